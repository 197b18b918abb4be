"""What the probes and the console show, as the named observations of ``registry``.

Each function looks at what a diagnosis saw (``Seen``) and returns the observations that hold,
with their evidence; the catalog turns them into findings of the playbooks that declare them.
None of them holds on a healthy instance: sshd answers, the key is accepted (or no key was
given to check), the console's addresses are the cloud's.
"""

from __future__ import annotations

from collections.abc import Sequence

from cloudrescue.cloud.base import ServerInfo
from cloudrescue.diagnose.catalog import Observed
from cloudrescue.diagnose.findings import Evidence
from cloudrescue.diagnose.probe import PortProbe
from cloudrescue.diagnose.seen import Seen


def _probe_evidence(probes: Sequence[PortProbe]) -> tuple[Evidence, ...]:
    return tuple(Evidence("probe", probe.describe()) for probe in probes)


def silent_sshd(seen: Seen) -> list[Observed]:
    """``ssh-refused``: every port refused; ``ssh-no-answer``: every port silent or
    unreachable (the console's line saying sshd started, when there is one, is evidence too:
    sshd runs, and still nothing answers)."""
    probes = seen.probes
    if not probes:
        return []
    if all(probe.state == "refused" for probe in probes):
        return [Observed("ssh-refused", _probe_evidence(probes))]
    if all(probe.state in ("no-answer", "unreachable") for probe in probes):
        started = seen.boot.sshd_started()
        console = (Evidence.console(started.number, started.text),) if started else ()
        return [Observed("ssh-no-answer", (*_probe_evidence(probes), *console))]
    return []


def refused_keys(seen: Seen) -> list[Observed]:
    """``ssh-keys-refused``: an open port whose sshd offers publickey and would accept none
    of the keys asked about (and no port accepting one)."""
    answered = [
        (probe, probe.ssh) for probe in seen.probes if probe.ssh is not None and probe.ssh.keys
    ]
    if not answered or seen.user is None:
        return []
    if any(key.accepted for _, ssh in answered for key in ssh.keys):
        return []
    evidence: list[Evidence] = []
    for probe, ssh in answered:
        refused = ", ".join(f"{key.fingerprint} ({key.source})" for key in ssh.keys)
        banner = f" ({ssh.banner})" if ssh.banner else ""
        evidence.append(
            Evidence(
                "probe",
                f"sshd at {probe.where}{banner} offers {', '.join(ssh.methods or ())} and "
                f"would accept none of the keys for {seen.user}: {refused}",
            )
        )
    # the playbook finds the cloud user on the disk itself: it is named only when given
    named = [("user", seen.user)] if seen.user_source == "--user" else []
    params = [*named, *(("key", path) for path in seen.key_files)]
    doubt = (
        f"user {seen.user} guessed from the console's OS name: --user names another"
        if seen.user_guessed
        else None
    )
    return [Observed("ssh-keys-refused", tuple(evidence), tuple(params), doubt)]


LOCAL = ("link", "host")
"""``ci-info`` scopes of addresses nothing outside the instance reaches."""


def _fixed_ipv4(server: ServerInfo) -> set[str]:
    return {a.ip for a in server.addresses if a.kind == "fixed" and a.version == 4 and a.ip}


def console_addresses(seen: Seen) -> list[Observed]:
    """``address-mismatch``: the console's ``ci-info`` table gives global IPv4 addresses,
    none of them a fixed IPv4 address of the instance; ``no-address``: it lists interfaces,
    none of them up with a global address."""
    rows = seen.boot.interfaces()
    if not rows:
        return []
    fixed = _fixed_ipv4(seen.server)
    usable = [
        row for row in rows if row.up and row.address is not None and row.scope not in LOCAL
    ]
    shown = [row for row in usable if row.ipv4 is not None]
    if shown and fixed and not any(str(row.ipv4) in fixed for row in shown):
        evidence = [Evidence.console(row.line.number, row.line.text) for row in shown]
        evidence.append(Evidence("api", f"the cloud assigned it {', '.join(sorted(fixed))}"))
        return [Observed("address-mismatch", tuple(evidence))]
    if not usable:
        return [
            Observed(
                "no-address",
                tuple(Evidence.console(row.line.number, row.line.text) for row in rows),
            )
        ]
    return []


OBSERVERS = (silent_sshd, refused_keys, console_addresses)
"""Every observer, in the order their observations are listed."""


def observe(seen: Seen) -> list[Observed]:
    """Every observation that holds on what was seen."""
    return [observed for observer in OBSERVERS for observed in observer(seen)]
