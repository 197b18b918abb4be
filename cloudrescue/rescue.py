"""The rescue procedure: rescue, wait, log in with a verified host key, and always leave.

``RescueWorkflow.session`` is the heart of every command that works on an instance::

    with workflow.session(server, command="fix-ssh-keys") as rescued:
        ...  # rescued.host is the rescue system (SSH), the instance's disk is attached

Whatever happens inside (an error, Ctrl-C), the instance is unrescued on the way out. A second
Ctrl-C during that cleanup leaves it in rescue, journalled, and says how to resume.

Side effects come in through the constructor: the cloud backend, the journal, the progress
sink, and ``connect`` / ``clock`` / ``sleep`` (SSH login and time), so the whole procedure
runs in unit tests against a fake cloud and a local host.
"""

from __future__ import annotations

import ipaddress
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cloudrescue.cloud.base import CloudBackend, ImageInfo, ServerInfo
from cloudrescue.cloud.wait import wait_for_status
from cloudrescue.errors import (
    CloudRescueError,
    ExitStatus,
    HostKeyError,
    InvalidInputError,
    NotFoundError,
    WrongStateError,
)
from cloudrescue.events import Events
from cloudrescue.journal import Journal, JournalEntry
from cloudrescue.keys import PublicKey
from cloudrescue.marks import MARK_KEYS, marks_for
from cloudrescue.remote.base import RemoteHost
from cloudrescue.remote.hostkeys import AnnouncedHostKeys, newest_announcement
from cloudrescue.remote.ssh import Endpoint, HostKeyCheck, JumpHost, connect
from cloudrescue.rescue_access import authorize_rescue_keys, remember_host_key

RESCUE_PASSWORD_BYTES = 24
RESCUE_USER = "root"
TRUSTED_HOST_KEY_WAIT = 15.0


class LeftInRescueError(CloudRescueError):
    """Cleanup was interrupted (second Ctrl-C): the instance stays in rescue, journalled."""

    exit_status = ExitStatus.INTERRUPTED


class Connect(Protocol):
    """Logs in to the rescue system (``cloudrescue.remote.ssh.connect``)."""

    def __call__(
        self,
        endpoint: Endpoint,
        *,
        password: str,
        host_keys: HostKeyCheck,
        jump: JumpHost | None,
        wait_seconds: float,
        on_retry: Callable[[str], None] | None,
    ) -> RemoteHost: ...


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


def rescue_settings(
    *,
    jump: str | None = None,
    jump_key: Path | None = None,
    jump_fingerprint: str | None = None,
    **given: Any,
) -> RescueSettings:
    """``RescueSettings`` from the command line's values, checked before the cloud is asked.

    ``given`` are named as ``RescueSettings`` fields; the bastion comes as text
    (``[user@]host[:port]``) with its key file and expected fingerprint.
    """
    jump_host = None
    if jump:
        try:
            endpoint = Endpoint.parse(jump, default_user=RESCUE_USER)
        except ValueError as error:
            raise InvalidInputError(f"--jump {jump!r}: expected [user@]host[:port]") from error
        if jump_key is not None and not jump_key.is_file():
            raise InvalidInputError(f"--jump-key {jump_key}: no such file")
        jump_host = JumpHost(endpoint, jump_key, jump_fingerprint)
    return RescueSettings(jump=jump_host, **given)


@dataclass
class RescuedInstance:
    """An instance in rescue with an open SSH session to its rescue system."""

    server: ServerInfo
    run_id: str
    address: str
    host: RemoteHost
    announced: AnnouncedHostKeys | None
    password: str = field(repr=False)


@dataclass(frozen=True)
class RescueLogin:
    """How to log in to an instance kept in rescue (what `cloudrescue rescue` prints)."""

    server: ServerInfo
    run_id: str
    address: str
    user: str
    fingerprint: str
    verified: bool  # the host key was announced on the console (else trusted on first use)
    known_hosts: Path
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


def stranded(
    journal: Journal, *, instance: str | None = None, include_held: bool = False
) -> list[JournalEntry]:
    """Journal entries of rescues whose run died (``resume`` restores them), newest first."""
    return [
        entry
        for entry in journal.entries()
        if not entry.process_alive
        and (include_held or entry.state != "held")
        and instance in (None, entry.server_name, entry.server_id)
    ]


class RescueWorkflow:
    """Rescue / unrescue one instance at a time, journalled, through a ``CloudBackend``."""

    def __init__(
        self,
        backend: CloudBackend,
        journal: Journal,
        events: Events,
        settings: RescueSettings,
        *,
        connect: Connect = connect,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.backend = backend
        self.journal = journal
        self.events = events
        self.settings = settings
        self._connect = connect
        self._clock = clock
        self._sleep = sleep

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
            clock=self._clock,
            sleep=self._sleep,
        )

    def _announced_host_keys(self, server: ServerInfo, before: str) -> AnnouncedHostKeys | None:
        limit = self.settings.host_key_timeout
        if self.settings.trust_host_key:
            limit = min(limit, TRUSTED_HOST_KEY_WAIT)
        self.events.stage("reading the rescue's host key fingerprints from the console log")
        deadline = self._clock() + limit
        while True:
            announced = newest_announcement(self.backend.console_output(server.id), before=before)
            if announced is not None or self._clock() > deadline:
                break
            self._sleep(self.settings.poll_interval)
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
        host = self._connect(
            Endpoint(address, username=RESCUE_USER),
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
            # Nova refuses metadata changes once the instance is in rescue: mark it now,
            # clear the mark once it is back (``leave``).
            self.backend.set_marks(server.id, marks_for(run_id))
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

    # -- holding, unrescuing, resuming --------------------------------------------------------

    def hold(self, server: ServerInfo, *, keys: Sequence[PublicKey] = ()) -> RescueLogin:
        """Rescue ``server`` and keep it in rescue, ready for a login by hand.

        ``keys`` are authorised for root on the rescue system; the verified host key goes to
        cloudrescue's own known_hosts file (the user's is never touched).
        """
        with self.session(server, command="rescue", hold=True) as rescued:
            if keys:
                authorize_rescue_keys(rescued.host, list(keys))
            entry = rescued.host.host_key_entry()
        known_hosts = remember_host_key(self.journal.path.parent, rescued.address, entry)
        return RescueLogin(
            server=rescued.server,
            run_id=rescued.run_id,
            address=rescued.address,
            user=RESCUE_USER,
            fingerprint=rescued.host.host_key_fingerprint,
            verified=rescued.announced is not None,
            known_hosts=known_hosts,
            password=rescued.password,
        )

    def unrescue(self, server: ServerInfo) -> ServerInfo:
        """Take ``server`` out of rescue and close every journal entry open for it."""
        if server.status != "RESCUE" and server.task_state not in ("rescuing", "unrescuing"):
            raise WrongStateError(
                f"instance {server.name} is not in rescue (status {server.status})"
            )
        open_runs = [entry for entry in self.journal.entries() if entry.server_id == server.id]
        final = self.leave(server, open_runs[0].run_id if open_runs else None)
        for entry in open_runs[1:]:
            self.journal.update(entry.run_id, "restored", note="closed by unrescue")
        return final

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
