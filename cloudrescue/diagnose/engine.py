"""``diagnose``: one diagnosis of an instance without rescue; it changes nothing.

1. the instance from the API (status, task state, fault, addresses);
2. its console log (one read), split to its last boot;
3. when it is ACTIVE and has an address (``rescue.pick_address``, or the one given), a probe
   of each of sshd's ports (``probe``), asking sshd about the user and the keys;
4. every source's findings (``sources``), then the verdict (``judge``): ranked, the
   likeliest first. No finding is "no problem found": nothing to change.

The side effects come in as arguments: the cloud ``backend``, the ``probe``, the ``clock``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from cloudrescue.cloud.base import CloudBackend, ServerInfo
from cloudrescue.diagnose.catalog import Catalog
from cloudrescue.diagnose.console import Boot, last_boot
from cloudrescue.diagnose.findings import Finding, at_least, rank
from cloudrescue.diagnose.probe import PortProbe, Probe
from cloudrescue.diagnose.seen import Seen
from cloudrescue.diagnose.sources import ApiSource, ConsoleSource, FindingSource, ObservationSource
from cloudrescue.errors import CloudError, InvalidInputError
from cloudrescue.keys import PublicKey

DEFAULT_PORTS = (22,)


@dataclass(frozen=True)
class Diagnosis:
    """What a diagnosis found: the findings, ranked (none: no problem found), and what it saw
    (``seen``), what it could not check (``notes``), how long it took."""

    seen: Seen
    findings: tuple[Finding, ...]
    notes: tuple[str, ...]
    seconds: float

    @property
    def server(self) -> ServerInfo:
        """The instance, as the API gave it."""
        return self.seen.server

    @property
    def healthy(self) -> bool:
        """No problem found."""
        return not self.findings

    @property
    def top(self) -> Finding | None:
        """The likeliest finding."""
        return self.findings[0] if self.findings else None


def judge(findings: Iterable[Finding]) -> list[Finding]:
    """The findings ranked (``findings.rank``), reachability considered: findings that only
    say sshd cannot be reached become supporting evidence of the top finding when it is of
    high or certain confidence (a boot stopped in emergency mode explains a silent sshd)."""
    every = list(findings)
    plain = rank(finding for finding in every if not finding.reachability)
    silent = [finding for finding in every if finding.reachability]
    if silent and plain and at_least(plain[0].confidence, "high"):
        top = plain[0].supported_by(item for finding in silent for item in finding.evidence)
        return [top, *plain[1:]]
    return rank(every)


def _address(server: ServerInfo, override: str | None) -> str | None:
    from cloudrescue.rescue import pick_address

    try:
        return pick_address(server, override)
    except InvalidInputError:
        return None


def _console(backend: CloudBackend, server: ServerInfo, notes: list[str]) -> Boot:
    try:
        text = backend.console_output(server.id).replace("\r\n", "\n")
    except CloudError as error:
        notes.append(f"the console log could not be read: {error.message}")
        return last_boot("")
    boot = last_boot(text)
    if not boot.lines:
        notes.append(
            "the console log is empty: the guest writes no boot messages to its serial "
            "console (the enable-serial-console playbook makes it)"
        )
    return boot


GIVEN = "--user"
GUESSED = "the cloud image's user of the OS the console names"


def _user(given: str | None, boot: Boot) -> tuple[str | None, str | None]:
    """The user to ask sshd about and how it was told: ``given``, else the user of
    cloud-init's table of authorized keys on the console, else the OS name's default."""
    if given is not None:
        return given, GIVEN
    if boot.key_user is not None:
        name, line = boot.key_user
        return name, f"cloud-init's table of authorized keys (console line {line.number})"
    guessed = boot.default_user()
    return guessed, GUESSED if guessed is not None else None


def _probe_notes(probes: Sequence[PortProbe], user: str | None, keys: bool) -> list[str]:
    notes: list[str] = []
    for probe in probes:
        ssh = probe.ssh
        if ssh is None:
            continue
        if ssh.error:
            notes.append(f"{probe.where}: {ssh.error}")
        if ssh.open_login:
            notes.append(f"{probe.where}: sshd lets {ssh.user or 'root'} in without any "
                         "authentication")
        elif ssh.methods is not None and "password" not in ssh.methods and (
            "keyboard-interactive" not in ssh.methods
        ):
            notes.append(
                f"{probe.where}: sshd offers only {', '.join(ssh.methods) or 'no method'}: "
                "a password will not help over SSH (`reset-password --ssh` allows one)"
            )
    opened = [probe for probe in probes if probe.ssh is not None and probe.ssh.methods]
    if opened and user is None:
        notes.append(
            "no user to check keys for (the console names neither the user of cloud-init's "
            "table of authorized keys nor an OS known to cloudrescue): "
            "--user USER checks whether sshd accepts your keys for that user"
        )
    elif opened and not keys:
        notes.append(
            "no public key was checked (none given, none in ~/.ssh): --key FILE checks "
            "whether sshd would accept yours"
        )
    return notes


def diagnose(
    backend: CloudBackend,
    instance: str,
    *,
    catalog: Catalog,
    probe: Probe,
    address: str | None = None,
    ports: Sequence[int] = DEFAULT_PORTS,
    user: str | None = None,
    keys: Sequence[tuple[str, PublicKey]] = (),
    keys_given: bool = True,
    sources: Sequence[FindingSource] = (),
    clock: Callable[[], float] = time.monotonic,
) -> Diagnosis:
    """Diagnose ``instance`` (name or ID) without rescue; see the module docstring.

    ``user`` and ``keys`` (``(file, key)`` pairs) are what sshd is asked about; without
    ``user``, the user cloud-init's table of authorized keys on the console names, else the
    cloud user of the OS the console names (``Seen.user_source`` says which). ``keys_given``:
    the keys were chosen by the user (a suggested fix names their files; default keys it
    leaves to the playbook's own default). ``sources`` are more sources of findings, after
    the API, the console and the observations (``deep.DeepSource``); a source's ``notes``, if it has
    them, join the diagnosis's notes, and the findings of the keys in its ``cleared`` (the
    playbooks a deep check found nothing to change for) are dropped.
    """
    start = clock()
    notes: list[str] = []
    server = backend.find_server(instance)
    boot = _console(backend, server, notes)
    chosen = _address(server, address)
    user, told = _user(user, boot)
    probes: tuple[PortProbe, ...] = ()
    if chosen is not None and server.status == "ACTIVE":
        probes = tuple(probe(chosen, port, user=user, keys=keys) for port in ports)
    elif chosen is not None:
        notes.append(f"sshd was not probed: the instance is {server.status}")
    notes += _probe_notes(probes, user, bool(keys))
    if told not in (None, GIVEN) and any(p.ssh is not None and p.ssh.keys for p in probes):
        notes.append(f"keys checked for {user}: {told} (--user names another)")
    seen = Seen(
        server=server,
        address=chosen,
        boot=boot,
        probes=probes,
        user=user,
        user_guessed=told == GUESSED,
        user_source=told if user is not None else None,
        key_files=tuple(dict.fromkeys(source for source, _ in keys)) if keys_given else (),
    )
    every: list[FindingSource] = [ApiSource(), ConsoleSource(catalog), ObservationSource(catalog)]
    every += sources
    found = [finding for source in every for finding in source.findings(seen)]
    cleared: set[str] = set()
    for source in every:  # what a source cleared or could not check (the deep checks)
        cleared |= {str(key) for key in getattr(source, "cleared", ())}
        notes += [str(note) for note in getattr(source, "notes", ())]
    dropped = sorted({finding.key for finding in found if finding.key in cleared})
    if dropped:
        notes.append(f"the disk clears what was suspected of {', '.join(dropped)}")
    findings = judge(finding for finding in found if finding.key not in cleared)
    return Diagnosis(seen, tuple(findings), tuple(notes), round(clock() - start, 3))
