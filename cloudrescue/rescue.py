"""The rescue procedure: rescue, wait, log in with a verified host key, and always leave.

``RescueWorkflow.session`` is the heart of every command that repairs an instance::

    with workflow.session(server, command="fix-ssh-keys") as rescued:
        ...  # rescued.host is the rescue system (SSH), the instance's disk is attached

Whatever happens inside (an error, Ctrl-C), the instance is unrescued on the way out. A second
Ctrl-C during that cleanup leaves it in rescue, journalled, and says how to resume.
"""

from __future__ import annotations

import ipaddress
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cloudrescue.cloud.base import CloudBackend, ImageInfo, ServerInfo
from cloudrescue.cloud.wait import wait_for_status
from cloudrescue.errors import (
    CloudRescueError,
    ExitStatus,
    HostKeyError,
    InvalidInputError,
    NotFoundError,
)
from cloudrescue.events import Events
from cloudrescue.journal import Journal, JournalEntry
from cloudrescue.remote.hostkeys import AnnouncedHostKeys, newest_announcement
from cloudrescue.remote.ssh import Endpoint, HostKeyCheck, JumpHost, SSHHost, connect

MARK_RUN = "cloudrescue:run"
MARK_SINCE = "cloudrescue:since"
MARK_KEYS = (MARK_RUN, MARK_SINCE)
RESCUE_PASSWORD_BYTES = 24


class LeftInRescueError(CloudRescueError):
    """Cleanup was interrupted (second Ctrl-C): the instance stays in rescue, journalled."""

    exit_status = ExitStatus.INTERRUPTED


@dataclass(frozen=True)
class RescueSettings:
    """Options shared by every command that rescues an instance."""

    image: str | None = None
    address: str | None = None
    jump: JumpHost | None = None
    trust_host_key: bool = False
    state_timeout: float = 600.0
    ssh_timeout: float = 300.0
    host_key_timeout: float = 180.0
    poll_interval: float = 1.0


@dataclass
class RescuedInstance:
    """An instance in rescue with an open SSH session to its rescue system."""

    server: ServerInfo
    run_id: str
    address: str
    host: SSHHost
    announced: AnnouncedHostKeys | None
    password: str = field(repr=False)


def pick_address(server: ServerInfo, override: str | None = None) -> str:
    """Address to SSH to: ``override``, else floating, else public, else fixed IPv4, else IPv6."""
    if override:
        return override

    def rank(ip: str, kind: str, version: int) -> tuple[int, int]:
        try:
            private = ipaddress.ip_address(ip).is_private
        except ValueError:
            private = True
        return (0 if kind == "floating" else 1 if not private else 2, 0 if version == 4 else 1)

    candidates = [(rank(a.ip, a.kind, a.version), a.ip) for a in server.addresses if a.ip]
    if server.access_ipv4:
        candidates.append(((0, 0), server.access_ipv4))
    if not candidates:
        raise InvalidInputError(
            f"instance {server.name} has no IP address",
            hint="pass --address to say where to connect",
        )
    return min(candidates)[1]


class RescueWorkflow:
    """Rescue / unrescue one instance at a time, journalled, through a ``CloudBackend``."""

    def __init__(
        self, backend: CloudBackend, journal: Journal, events: Events, settings: RescueSettings
    ) -> None:
        self.backend = backend
        self.journal = journal
        self.events = events
        self.settings = settings

    # -- entering ---------------------------------------------------------------------------

    def _rescue_image(self) -> ImageInfo | None:
        return self.backend.find_image(self.settings.image) if self.settings.image else None

    def _wait(self, server: ServerInfo, targets: frozenset[str]) -> ServerInfo:
        return wait_for_status(
            self.backend,
            server.id,
            targets,
            timeout=self.settings.state_timeout,
            events=self.events,
            interval=self.settings.poll_interval,
        )

    def _announced_host_keys(self, server: ServerInfo, before: str) -> AnnouncedHostKeys | None:
        limit = self.settings.host_key_timeout
        if self.settings.trust_host_key:
            limit = min(limit, 15.0)
        self.events.stage("reading the rescue's host key fingerprints from the console log")
        deadline = time.monotonic() + limit
        while True:
            announced = newest_announcement(self.backend.console_output(server.id), before=before)
            if announced is not None or time.monotonic() > deadline:
                break
            time.sleep(self.settings.poll_interval)
        if announced is None and not self.settings.trust_host_key:
            raise HostKeyError(
                f"the console log of {server.name} shows no SSH host key fingerprints for the "
                f"rescue system after {limit:.0f} s: cannot verify whom we would talk to",
                hint="check the key another way (e.g. the cloud's console), then pass "
                "--trust-host-key",
            )
        return announced

    def _enter(
        self, server: ServerInfo, run_id: str, password: str, before: str, address: str
    ) -> RescuedInstance:
        """After the rescue request: wait for RESCUE, verify host keys, log in."""
        rescued_server = self._wait(server, frozenset({"RESCUE"}))
        self.journal.update(run_id, "rescued")
        announced = self._announced_host_keys(server, before)
        self.events.stage(f"logging in to the rescue system at {address}")
        host = connect(
            Endpoint(address),
            password=password,
            host_keys=HostKeyCheck(announced, trust_on_first_use=self.settings.trust_host_key),
            jump=self.settings.jump,
            wait_seconds=self.settings.ssh_timeout,
            on_retry=lambda why: self.events.detail(f"waiting for sshd: {why}"),
        )
        return RescuedInstance(rescued_server, run_id, address, host, announced, password)

    # -- leaving ----------------------------------------------------------------------------

    def leave(self, server: ServerInfo, run_id: str | None) -> ServerInfo:
        """Unrescue (if still in rescue), wait for ACTIVE, clear marks, close the journal."""
        current = self.backend.get_server(server.id)
        if current.task_state == "rescuing" or (
            current.status not in ("RESCUE", "ACTIVE", "SHUTOFF", "ERROR")
        ):
            current = self._wait(current, frozenset({"RESCUE", "ACTIVE", "SHUTOFF"}))
        if current.status == "RESCUE":
            if run_id:
                self.journal.update(run_id, "unrescue-requested")
            self.events.stage(f"leaving rescue: unrescuing {server.name}")
            self.backend.unrescue(server.id)
            current = self._wait(current, frozenset({"ACTIVE", "SHUTOFF"}))
        self.backend.clear_marks(server.id, MARK_KEYS)
        if run_id:
            self.journal.update(run_id, "restored")
        return current

    @contextmanager
    def session(
        self, server: ServerInfo, *, command: str, hold: bool = False
    ) -> Iterator[RescuedInstance]:
        """Rescue, yield the logged-in rescue system, and unrescue afterwards.

        Input is checked (image, address) before the cloud is asked anything. With ``hold``
        the instance stays in rescue after a *successful* block (``cloudrescue rescue``);
        any failure or Ctrl-C still unrescues it.
        """
        image = self._rescue_image()
        address = pick_address(server, self.settings.address)
        before = self.backend.console_output(server.id)
        run_id = self.journal.start(
            cloud=self.backend.cloud_name,
            server_id=server.id,
            server_name=server.name,
            command=command,
        )
        self.events.stage(f"asking the cloud to rescue {server.name}")
        try:
            # Nova accepts metadata changes only while no task runs and not in rescue: mark
            # the instance now, clear the mark once it is back (``leave``).
            self.backend.set_marks(
                server.id,
                {MARK_RUN: run_id, MARK_SINCE: datetime.now(UTC).isoformat(timespec="seconds")},
            )
            started = self.backend.rescue(
                server, admin_password=secrets.token_urlsafe(RESCUE_PASSWORD_BYTES), image=image
            )
        except CloudRescueError as error:
            self._clear_marks_quietly(server)
            self.journal.update(run_id, "restored", note=f"rescue refused: {error.message}")
            raise
        rescued: RescuedInstance | None = None
        succeeded = False
        try:
            rescued = self._enter(server, run_id, started.admin_password, before, address)
            yield rescued
            succeeded = True
        except KeyboardInterrupt:
            self.events.note(
                f"interrupted: restoring {server.name} (press Ctrl-C again to leave it in rescue)"
            )
            raise
        finally:
            try:
                if rescued is not None:
                    rescued.host.close()
                if succeeded and hold:
                    self.journal.update(run_id, "held", note=f"kept in rescue by `{command}`")
                else:
                    self.leave(server, run_id)
            except KeyboardInterrupt:
                self.journal.update(run_id, "left-in-rescue", note="cleanup interrupted")
                raise LeftInRescueError(
                    f"{server.name} was left in rescue (cleanup interrupted)",
                    hint="run `cloudrescue resume` to unrescue it",
                ) from None

    def _clear_marks_quietly(self, server: ServerInfo) -> None:
        try:
            self.backend.clear_marks(server.id, MARK_KEYS)
        except CloudRescueError as error:
            self.events.note(f"could not clear the cloudrescue mark: {error.message}")

    # -- resuming ---------------------------------------------------------------------------

    def resume(self, entry: JournalEntry) -> str:
        """Restore an instance a dead run left in rescue; returns what was done."""
        try:
            server = self.backend.get_server(entry.server_id)
        except NotFoundError:
            self.journal.update(entry.run_id, "restored", note="instance no longer exists")
            return f"{entry.server_name}: no longer exists; journal entry closed"
        was = server.status
        final = self.leave(server, entry.run_id)
        if was == "RESCUE" or was != final.status:
            return f"{entry.server_name}: unrescued, now {final.status}"
        return f"{entry.server_name}: was already {final.status}; journal entry closed"
