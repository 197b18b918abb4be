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
import re
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

from cloudrescue.cloud.base import (
    CloudBackend,
    ImageInfo,
    RescueStarted,
    ServerInfo,
    keeps_marks,
)
from cloudrescue.cloud.wait import wait_for_status
from cloudrescue.errors import (
    CloudError,
    CloudRescueError,
    ExitStatus,
    HostKeyError,
    InvalidInputError,
    KeptInRescueError,
    NotFoundError,
    WrongStateError,
)
from cloudrescue.events import Events
from cloudrescue.journal import Journal, JournalEntry
from cloudrescue.keys import PublicKey
from cloudrescue.marks import MARK_KEYS, RescueMark, marks_for, read_mark
from cloudrescue.remote.base import RemoteHost
from cloudrescue.remote.hostkeys import AnnouncedHostKeys, announcements_since, parse_console
from cloudrescue.remote.reconnect import ReconnectingHost
from cloudrescue.remote.ssh import Endpoint, HostKeyCheck, JumpHost, connect
from cloudrescue.rescue_access import authorize_rescue_keys, remember_host_key

RESCUE_PASSWORD_BYTES = 24
FINGERPRINT = re.compile(r"SHA256:[A-Za-z0-9+/]{43}=?")
RESCUE_USER = "root"
TRUSTED_HOST_KEY_WAIT = 15.0
UNRESCUE_ATTEMPTS = 3
SETTLE_INTERVAL = 0.5
SETTLE_LIMIT = 10.0
# The wait for RESCUE polls faster: the sooner RESCUE is seen, the less of the rescue's own
# console output (its host-key block comes seconds later) falls before the baseline.
RESCUE_POLL_INTERVAL = 0.5


class LeftInRescueError(CloudRescueError):
    """Cleanup was interrupted (second Ctrl-C): the instance stays in rescue, journalled."""

    exit_status = ExitStatus.INTERRUPTED


class Connect(Protocol):
    """Logs in to the rescue system (``cloudrescue.remote.ssh.connect``)."""

    def __call__(
        self,
        endpoint: Endpoint,
        *,
        password: str | None,
        host_keys: HostKeyCheck,
        jump: JumpHost | None,
        wait_seconds: float,
        on_retry: Callable[[str], None] | None,
        key: Any = None,
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


# What ``rescue_settings`` takes as is: every field but the bastion, which comes as text.
_SETTABLE = frozenset(item.name for item in fields(RescueSettings)) - {"jump"}


def rescue_settings(
    *,
    jump: str | None = None,
    jump_key: Path | None = None,
    jump_fingerprint: str | None = None,
    **given: Any,
) -> RescueSettings:
    """``RescueSettings`` from the command line's values, checked before the cloud is asked.

    ``given`` are named as ``RescueSettings`` fields; the bastion comes as text
    (``[user@]host[:port]``) with its key file and expected fingerprint. A name that is no
    ``RescueSettings`` field (a ``RescueOptions`` field added without its core half) is a
    ``CloudRescueError`` naming it: one line and exit 1, never a ``TypeError`` traceback.
    """
    unknown = sorted(set(given) - _SETTABLE)
    if unknown:
        raise CloudRescueError(
            f"rescue option {', '.join(unknown)} has no RescueSettings field of that name "
            "(cloudrescue/rescue.py): a bug, please report it"
        )
    for name, text in (("--image", given.get("image")), ("--address", given.get("address"))):
        if text is not None and not text.strip():
            raise InvalidInputError(f"{name} is empty")
    if jump is None:
        for name, value in (("--jump-key", jump_key), ("--jump-fingerprint", jump_fingerprint)):
            if value is not None:
                raise InvalidInputError(f"{name} is for the bastion: it needs --jump")
        return RescueSettings(**given)
    try:
        endpoint = Endpoint.parse(jump, default_user=RESCUE_USER)
    except ValueError as error:
        raise InvalidInputError(f"--jump {jump!r}: expected [user@]host[:port]") from error
    if jump_key is not None and not jump_key.is_file():
        raise InvalidInputError(f"--jump-key {jump_key}: no such file")
    if jump_fingerprint is not None and not FINGERPRINT.fullmatch(jump_fingerprint):
        raise InvalidInputError(
            f"--jump-fingerprint {jump_fingerprint!r}: expected SHA256:<43 base64 characters> "
            "(as `ssh-keygen -lf` prints it)"
        )
    return RescueSettings(jump=JumpHost(endpoint, jump_key, jump_fingerprint), **given)


@dataclass
class RescuedInstance:
    """An instance in rescue with an open SSH session to its rescue system."""

    server: ServerInfo
    run_id: str
    address: str
    host: ReconnectingHost
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


@dataclass(frozen=True)
class CloudRescue:
    """An instance the cloud shows in (or entering, leaving) rescue, or marked by us."""

    server: ServerInfo
    mark: RescueMark | None


def cloud_rescue(server: ServerInfo) -> CloudRescue | None:
    """What the cloud shows of a rescue of ``server``: none unless it is in (or going into or
    out of) rescue, or carries cloudrescue's mark."""
    mark = read_mark(server)
    in_rescue = server.status == "RESCUE" or server.task_state in ("rescuing", "unrescuing")
    return CloudRescue(server, mark) if mark is not None or in_rescue else None


def rescues_in_cloud(backend: CloudBackend) -> list[CloudRescue]:
    """Every instance of the project in rescue or carrying cloudrescue's mark."""
    return [found for server in backend.list_servers() if (found := cloud_rescue(server))]


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

    def _wait(
        self, server: ServerInfo, targets: frozenset[str], interval: float | None = None
    ) -> ServerInfo:
        return wait_for_status(
            self.backend,
            server.id,
            targets,
            timeout=self.settings.state_timeout,
            events=self.events,
            interval=min(self.settings.poll_interval, interval or self.settings.poll_interval),
            clock=self._clock,
            sleep=self._sleep,
        )

    def _console(self, server: ServerInfo) -> str:
        """The console log; passing API failures are retried for ``host_key_timeout``."""
        deadline = self._clock() + self.settings.host_key_timeout
        while True:
            try:
                return self.backend.console_output(server.id)
            except CloudError as error:
                if self._clock() > deadline:
                    raise
                self.events.detail(f"console log unavailable ({error.message}): retrying")
                self._sleep(self.settings.poll_interval)

    def _console_settled(self, server: ServerInfo, console: str) -> str:
        """The console once two reads in a row agree (bounded), so a block is read whole."""
        interval = min(self.settings.poll_interval, SETTLE_INTERVAL)
        deadline = self._clock() + SETTLE_LIMIT
        while self._clock() < deadline:
            self._sleep(interval)
            again = self._console(server)
            if again == console:
                break
            console = again
        return console

    def _announced_host_keys(self, server: ServerInfo, baseline: str) -> AnnouncedHostKeys | None:
        """The rescue's host keys: printed on the console after the instance reached RESCUE.

        ``baseline`` is the console as read the moment the instance was seen in RESCUE, when
        its guest is off, so nothing the guest printed (while shutting down, or in earlier
        boots) can pass for the rescue's. Two different announcements since then are refused:
        one of them is not the rescue's.
        """
        trust = self.settings.trust_host_key
        limit = self.settings.host_key_timeout
        if trust:
            limit = min(limit, TRUSTED_HOST_KEY_WAIT)
        self.events.stage("reading the rescue's host key fingerprints from the console log")
        deadline = self._clock() + limit
        while True:
            console = self._console(server)
            if announcements_since(console, baseline) or self._clock() > deadline:
                break
            self._sleep(self.settings.poll_interval)
        found = announcements_since(self._console_settled(server, console), baseline)
        if len(set(found)) > 1:
            raise HostKeyError(
                f"the console of {server.name} announced {len(set(found))} different sets of "
                "host keys since the rescue started: cannot tell which one is the rescue's",
                hint="check the rescue's key another way (the cloud's console), then retry",
            )
        if found:
            if trust:
                self.events.note(
                    "the console announced the rescue's host keys: verifying against them "
                    "(--trust-host-key is not needed and does not override them)"
                )
            return found[-1]
        if not trust:
            stale = ""
            if parse_console(baseline):
                stale = " (the fingerprints printed before it are not trusted)"
            raise HostKeyError(
                f"the console log of {server.name} shows no SSH host key fingerprints printed "
                f"by the rescue system after {limit:.0f} s{stale}: cannot verify whom we would "
                "talk to",
                hint="check the key another way (e.g. the cloud's console), then pass "
                "--trust-host-key",
            )
        self.events.note("no host key fingerprints on the console: trusting the rescue's key")
        return None

    def _console_before(self, server: ServerInfo) -> str | None:
        """The console as it is before the rescue request (one read, no retries), or None
        when the cloud shows none now (a stopped instance's console may be unavailable)."""
        if not self.backend.announces_host_keys:
            return None
        try:
            return self.backend.console_output(server.id) or None
        except CloudRescueError as error:
            self.events.detail(f"no console log before the rescue ({error.message})")
            return None

    def _reach_rescue(
        self,
        server: ServerInfo,
        run_id: str,
        started: RescueStarted,
        before: str | None,
        image: ImageInfo | None,
    ) -> tuple[ServerInfo, str, AnnouncedHostKeys | None]:
        """Wait for RESCUE and read the rescue's host keys: (the server, the rescue's root
        password, its announced keys).

        ``before`` is the console as read before the rescue request. A block printed between
        that read and the baseline (the read once RESCUE was seen) may be the rescue's own,
        read too late (a slow API, a busy machine), or one the guest printed as it shut down:
        the two cannot be told apart, so neither is taken; rather than wait for a block that
        may never come, the instance is rescued once more, and that second time (or with no
        ``before``, or trusting) the wait for a block after the baseline is the usual one.
        """
        rescued_server = self._wait(server, frozenset({"RESCUE"}), RESCUE_POLL_INTERVAL)
        if not self.backend.announces_host_keys:
            self.journal.update(run_id, "rescued")
            self.events.note(
                "this cloud shows no console log to read the rescue's host key from: "
                "trusting it on first use (--trust-host-key)"
            )
            return rescued_server, started.admin_password, None
        # The baseline first, before anything else: the rescue prints its keys some seconds
        # after RESCUE, and a block printed before this read is not taken.
        baseline = self._console(server)
        self.journal.update(run_id, "rescued")
        late = before is not None and announcements_since(baseline, before)
        if late and not self.settings.trust_host_key:
            self.events.note(
                f"the console of {server.name} shows host keys printed before it was seen in "
                "RESCUE (they cannot be told from ones its guest printed): rescuing it once more"
            )
            again = self._rescue_again(server, run_id, image)
            return self._reach_rescue(server, run_id, again, None, image)
        return rescued_server, started.admin_password, self._announced_host_keys(server, baseline)

    def _rescue_again(
        self, server: ServerInfo, run_id: str, image: ImageInfo | None
    ) -> RescueStarted:
        """Unrescue and rescue anew, with a new password: the cloud's answer."""
        self.events.stage(f"rescuing {server.name} once more")
        self.journal.update(run_id, "unrescue-requested", note="rescued once more")
        self._unrescue(server)
        self._wait(server, frozenset({"ACTIVE", "SHUTOFF"}))
        self.journal.update(run_id, "rescue-requested")
        return self._request_rescue(server, run_id, image)

    def _enter(
        self,
        server: ServerInfo,
        run_id: str,
        started: RescueStarted,
        address: str,
        *,
        before: str | None,
        image: ImageInfo | None,
    ) -> RescuedInstance:
        """After the rescue request: wait for RESCUE, read the host keys, log in."""
        rescued_server, password, announced = self._reach_rescue(
            server, run_id, started, before, image
        )
        self.events.stage(f"logging in to the rescue system at {address}")
        first: list[str] = []  # the fingerprint the first login verified

        def login() -> RemoteHost:
            check = HostKeyCheck(announced, trust_on_first_use=self.settings.trust_host_key)
            if first:  # a reconnection: the key verified at the first login, and no other
                self.events.note(f"logging in to {address} again (the connection was cut)")
                check = HostKeyCheck(AnnouncedHostKeys(frozenset(first)))
            host = self._connect(
                Endpoint(address, username=RESCUE_USER),
                password=password,
                host_keys=check,
                jump=self.settings.jump,
                wait_seconds=self.settings.ssh_timeout,
                on_retry=lambda why: self.events.detail(f"waiting for sshd: {why}"),
            )
            first[:] = first or [host.host_key_fingerprint]
            return host

        host = ReconnectingHost(login)
        if announced is None:
            fingerprint = host.host_key_fingerprint
            trusted = f"host key {fingerprint} trusted on first use (--trust-host-key)"
            self.journal.update(run_id, "rescued", note=trusted)
            self.events.note(trusted)
        return RescuedInstance(rescued_server, run_id, address, host, announced, password)

    # -- leaving ----------------------------------------------------------------------------

    def _fresh(self, server: ServerInfo) -> ServerInfo:
        """The server's state now; passing API failures are retried (as while waiting)."""
        deadline = self._clock() + self.settings.state_timeout
        while True:
            try:
                return self.backend.get_server(server.id)
            except NotFoundError:
                raise
            except CloudError as error:
                if self._clock() > deadline:
                    raise
                self.events.detail(f"the cloud did not answer ({error.message}): retrying")
                self._sleep(self.settings.poll_interval)

    def _unrescue(self, server: ServerInfo) -> None:
        """Ask for the unrescue; an error is checked against the server before it counts (a
        lost answer to an applied request), a refusal is retried a few times."""
        for attempt in range(UNRESCUE_ATTEMPTS):
            try:
                self.backend.unrescue(server.id)
                return
            except CloudRescueError as error:
                current = self._fresh(server)
                if current.task_state == "unrescuing" or current.status != "RESCUE":
                    return  # applied all the same (its answer was lost)
                if attempt == UNRESCUE_ATTEMPTS - 1:
                    raise
                self.events.detail(f"unrescue refused ({error.message}): retrying")
                self._sleep(float(2**attempt))

    def leave(self, server: ServerInfo, run_id: str | None) -> ServerInfo:
        """Unrescue (if still in rescue), wait for ACTIVE, clear marks, close the journal."""
        current = self._fresh(server)
        if current.task_state or current.status not in ("RESCUE", "ACTIVE", "SHUTOFF", "ERROR"):
            # A task runs (rescuing, or an unrescue a dead run asked for): let it finish.
            current = self._wait(current, frozenset({"RESCUE", "ACTIVE", "SHUTOFF"}))
        if current.status == "RESCUE":
            if run_id:
                self.journal.update(run_id, "unrescue-requested")
            self.events.stage(f"leaving rescue: unrescuing {server.name}")
            self._unrescue(current)
            current = self._wait(current, frozenset({"ACTIVE", "SHUTOFF"}))
        self._clear_marks_quietly(server)
        if run_id:
            self.journal.update(run_id, "restored")
        return current

    @contextmanager
    def session(
        self, server: ServerInfo, *, command: str, hold: bool | Callable[[], bool] = False
    ) -> Iterator[RescuedInstance]:
        """Rescue, yield the logged-in rescue system, and unrescue afterwards.

        Input is checked (image, address) before the cloud is asked anything. With ``hold``
        (or when ``hold()`` says so once the block is done) the instance stays in rescue after
        a *successful* block (``cloudrescue rescue``, a kept shell); any failure or Ctrl-C
        still unrescues it.
        """
        if not self.backend.announces_host_keys and not self.settings.trust_host_key:
            raise HostKeyError(
                f"{server.name}: this cloud shows no console log, so the rescue system's SSH "
                "host key cannot be verified against one (an OVHcloud VPS rescue announces none)",
                hint="check the key another way if you can (the KVM console), then pass "
                "--trust-host-key: the fingerprint it trusts is recorded in the journal",
            )
        image = self._rescue_image()
        address = pick_address(server, self.settings.address)
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
        except CloudRescueError as error:
            self._clear_marks_quietly(server)
            self.journal.update(run_id, "restored", note=f"not rescued: {error.message}")
            raise
        before = self._console_before(server)
        started = self._request_rescue(server, run_id, image)
        rescued: RescuedInstance | None = None
        succeeded = False
        kept: KeptInRescueError | None = None
        try:
            rescued = self._enter(server, run_id, started, address, before=before, image=image)
            yield rescued
            succeeded = True
        except KeyboardInterrupt:
            self.events.note(
                f"interrupted: restoring {server.name} (press Ctrl-C again to leave it in rescue)"
            )
            raise
        except KeptInRescueError as error:
            kept = error
            raise
        finally:
            try:
                if rescued is not None:
                    rescued.host.close()
                if succeeded and (hold() if callable(hold) else hold):
                    self.journal.update(run_id, "held", note=f"kept in rescue by `{command}`")
                elif kept is not None:
                    self.journal.update(run_id, "held", note=f"kept in rescue: {kept.message}")
                else:
                    self.leave(server, run_id)
            except KeyboardInterrupt:
                self.journal.update(run_id, "left-in-rescue", note="cleanup interrupted")
                raise LeftInRescueError(
                    f"{server.name} was left in rescue (cleanup interrupted)",
                    hint="run `cloudrescue resume` to unrescue it",
                ) from None

    def _request_rescue(
        self, server: ServerInfo, run_id: str, image: ImageInfo | None
    ) -> RescueStarted:
        """Ask for the rescue with a new password: the cloud's answer, or, when the answer was
        an error, what ``_rescued_anyway`` makes of it."""
        password = secrets.token_urlsafe(RESCUE_PASSWORD_BYTES)
        try:
            return self.backend.rescue(server, admin_password=password, image=image)
        except CloudRescueError as error:
            return self._rescued_anyway(server, run_id, password, error)

    def _rescued_anyway(
        self, server: ServerInfo, run_id: str, password: str, error: CloudRescueError
    ) -> RescueStarted:
        """After an error from the rescue request: did the cloud apply it all the same?

        A 5xx or a lost answer may come after nova accepted the request (it sets the task
        state before answering). Rescuing or in RESCUE: it was ours (the mark we just set
        proves the instance was not in rescue before), go on. Not rescuing: refused, the
        entry is closed. Cannot tell: the entry stays open, so `status` and `resume` see it.
        """
        try:
            current = self.backend.get_server(server.id)
        except CloudRescueError:
            self.journal.update(
                run_id, "rescue-requested", note=f"rescue answer lost: {error.message}"
            )
            error.hint = error.hint or (
                f"{server.name} may be in rescue: check `cloudrescue status {server.name}`, "
                "and run `cloudrescue resume` once the cloud answers"
            )
            raise error from None
        if current.status == "RESCUE" or current.task_state == "rescuing":
            self.events.note(
                f"the cloud's answer was lost ({error.message}) but it is rescuing "
                f"{server.name}: going on"
            )
            return RescueStarted(admin_password=password, stable_device=False)
        self._clear_marks_quietly(server)
        self.journal.update(run_id, "restored", note=f"rescue refused: {error.message}")
        raise error

    def _clear_marks_quietly(self, server: ServerInfo) -> None:
        try:
            self.backend.clear_marks(server.id, MARK_KEYS)
        except CloudRescueError as error:
            self.events.note(
                f"could not clear the cloudrescue mark of {server.name} ({error.message}): "
                f"`cloudrescue resume {server.name}` clears it"
            )

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

    def reenter(
        self, entry: JournalEntry, *, address: str, fingerprint: str, key: Any
    ) -> RescuedInstance:
        """Log in again to the rescue system a held run left: with the run's own ``key``
        (``paramiko.PKey``), verifying the host key ``fingerprint`` its first login verified."""
        server = self.backend.get_server(entry.server_id)
        mark = read_mark(server)
        if server.status != "RESCUE" or (mark is not None and mark.run_id != entry.run_id):
            raise WrongStateError(
                f"instance {server.name} is no longer in the rescue of run {entry.run_id} "
                f"(status {server.status})",
                hint=f"`cloudrescue status {server.name}` shows it",
            )
        announced = AnnouncedHostKeys(frozenset({fingerprint}))

        def login() -> RemoteHost:
            return self._connect(
                Endpoint(address, username=RESCUE_USER),
                password=None,
                key=key,
                host_keys=HostKeyCheck(announced),
                jump=self.settings.jump,
                wait_seconds=self.settings.ssh_timeout,
                on_retry=lambda why: self.events.detail(f"waiting for sshd: {why}"),
            )

        self.events.stage(f"logging in to the rescue system at {address} again")
        host = ReconnectingHost(login)
        return RescuedInstance(server, entry.run_id, address, host, announced, password="")

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
        """Restore an instance a dead run left in rescue; returns what was done.

        The instance's mark decides whose rescue it is: marked by another run, or in rescue
        with no mark at all, it is someone else's now and is left alone. On a cloud that
        keeps no marks (an OVHcloud VPS: ``keeps_marks``) the journal entry alone says it is
        this run's: in rescue, it is unrescued.
        """
        try:
            server = self.backend.get_server(entry.server_id)
        except NotFoundError:
            self.journal.update(entry.run_id, "restored", note="instance no longer exists")
            return f"{entry.server_name}: no longer exists; journal entry closed"
        mark = read_mark(server)
        in_rescue = server.status == "RESCUE" or server.task_state in ("rescuing", "unrescuing")
        unmarked = mark is None and in_rescue and keeps_marks(self.backend)
        if (mark is not None and mark.run_id != entry.run_id) or unmarked:
            owner = f"run {mark.run_id}" if mark is not None else "someone else (no mark)"
            note = f"now in the hands of {owner}: left alone"
            self.journal.update(entry.run_id, "restored", note=note)
            return f"{entry.server_name}: {note}; journal entry closed"
        final = self.leave(server, entry.run_id)
        if in_rescue or server.status != final.status:
            return f"{entry.server_name}: unrescued, now {final.status}"
        return f"{entry.server_name}: was already {final.status}; journal entry closed"

    def resume_marked(self, server: ServerInfo) -> str:
        """Restore an instance cloudrescue marked in the cloud, with no journal entry here
        (the run was on another machine, or the journal was lost)."""
        mark = read_mark(server)
        if mark is None:
            raise WrongStateError(
                f"instance {server.name} carries no cloudrescue mark and no journal entry "
                "here names it: nothing to resume",
                hint=f"`cloudrescue unrescue {server.name}` takes any instance out of rescue",
            )
        final = self.leave(server, None)
        return f"{server.name}: unrescued (mark of run {mark.run_id}), now {final.status}"
