"""Where findings come from: each ``FindingSource`` reads what was seen (``Seen``) and says
what it finds wrong.

- ``ApiSource``: the instance's status, task state and fault as the cloud reports them, and
  whether it has an address at all (``certain``: the cloud says so);
- ``ConsoleSource``: the catalog's console signatures and the built-in ones, matched on the
  console's last boot;
- ``ObservationSource``: the observations (probes, console against the API) and the
  playbooks that declare them.

A deep check of the rescued disk is one more source: it reads the same ``Seen`` and returns
findings the engine ranks with the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from cloudrescue.diagnose.catalog import Catalog
from cloudrescue.diagnose.findings import Evidence, Finding
from cloudrescue.diagnose.observations import observe
from cloudrescue.diagnose.seen import Seen
from cloudrescue.diagnose.signatures import match


class FindingSource(Protocol):
    """Something that looks at an instance and says what it found wrong."""

    @property
    def name(self) -> str:
        """What it looks at (``api``, ``console``, ``observations``...)."""
        ...

    def findings(self, seen: Seen) -> Sequence[Finding]:
        """What it found (empty: nothing wrong as far as it can tell)."""
        ...


# status -> (cause, what to do); ACTIVE has none.
STATUS_ADVICE: dict[str, tuple[str, str]] = {
    "SHUTOFF": (
        "the instance is stopped",
        "start it: `openstack server start INSTANCE`",
    ),
    "ERROR": (
        "nova put the instance in ERROR",
        "read its fault (`openstack server show INSTANCE`); once understood, `openstack "
        "server reboot --hard INSTANCE` (or a rebuild); a failure of the cloud itself is for "
        "its operator",
    ),
    "RESCUE": (
        "the instance is in rescue mode: its own system is not running",
        "`cloudrescue unrescue INSTANCE` (`cloudrescue resume` for a rescue a run left)",
    ),
    "PAUSED": ("the instance is paused", "`openstack server unpause INSTANCE`"),
    "SUSPENDED": ("the instance is suspended", "`openstack server resume INSTANCE`"),
    "SHELVED": ("the instance is shelved", "`openstack server unshelve INSTANCE`"),
    "SHELVED_OFFLOADED": ("the instance is shelved", "`openstack server unshelve INSTANCE`"),
    "VERIFY_RESIZE": (
        "a resize of the instance waits for confirmation",
        "`openstack server resize confirm INSTANCE` (or `resize revert`)",
    ),
    "DELETED": ("the instance is deleted", "restore it if the cloud keeps deleted instances"),
    "SOFT_DELETED": ("the instance is deleted (soft)", "`openstack server restore INSTANCE`"),
}
TRANSITION_ADVICE = "wait for the instance's task to end (`openstack server show INSTANCE`)"


@dataclass(frozen=True)
class ApiSource:
    """What the cloud's API states about the instance."""

    name: str = "api"

    def findings(self, seen: Seen) -> Sequence[Finding]:
        server = seen.server
        found: list[Finding] = []
        state = f"status {server.status}" + (
            f", task {server.task_state}" if server.task_state else ""
        )
        evidence = [Evidence("api", state)]
        if server.fault:
            evidence.append(Evidence("api", f"fault: {server.fault}"))
        if server.status in STATUS_ADVICE:
            cause, advice = STATUS_ADVICE[server.status]
            if server.status == "ERROR" and server.fault:
                cause = f"{cause}: {server.fault}"
            found.append(
                Finding(f"api:{server.status.lower()}", cause, "certain", tuple(evidence),
                        advice=advice)
            )
        elif server.status != "ACTIVE":
            found.append(
                Finding("api:transition", f"the instance is in transition ({server.status})",
                        "high", tuple(evidence), advice=TRANSITION_ADVICE)
            )
        elif server.task_state:
            found.append(
                Finding("api:task", f"a task runs on the instance ({server.task_state})",
                        "medium", tuple(evidence), advice=TRANSITION_ADVICE)
            )
        if seen.address is None:
            found.append(
                Finding(
                    "api:no-address",
                    "the cloud reports no IP address for the instance",
                    "certain",
                    (Evidence("api", "no address in the instance's networks"),),
                    advice="attach a port or a floating IP (`openstack server add floating ip "
                    "INSTANCE IP`), or give --address",
                )
            )
        return found


@dataclass(frozen=True)
class ConsoleSource:
    """The console signatures of the catalog (and the built-in ones) on the last boot."""

    catalog: Catalog
    name: str = "console"

    def findings(self, seen: Seen) -> Sequence[Finding]:
        if seen.server.status == "RESCUE":
            return []  # the last boot is the rescue system's, not the instance's
        return match(seen.boot, self.catalog.signatures)


@dataclass(frozen=True)
class ObservationSource:
    """The observations that hold, as findings of the playbooks that declare them."""

    catalog: Catalog
    name: str = "observations"

    def findings(self, seen: Seen) -> Sequence[Finding]:
        if seen.server.status == "RESCUE":
            return []  # what is seen is the rescue system
        return [
            finding for observed in observe(seen) for finding in self.catalog.findings(observed)
        ]
