"""Fakes for driving the run path without root or a lab: a cloud, a clock, a rescue host.

``FakeCloud`` is an in-memory nova: rescue and unrescue take ``transition`` seconds of the
``FakeClock``'s time (which only moves when the code under test sleeps), the console announces
the rescue's host key once the instance is in RESCUE, and faults are set as attributes.
``FakeConnect`` logs in to the rescue "system", which is this machine (``LocalHost``), only with
the password the cloud was sent and only when the announced host key is the rescue's.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloudrescue.cloud.base import Address, ImageInfo, RescueStarted, ServerInfo
from cloudrescue.disks import AskRoot, MountedGuest, RootFilesystem, UnmountReport
from cloudrescue.disks.teardown import UndoStep
from cloudrescue.errors import (
    CloudError,
    ConnectionFailedError,
    HostKeyError,
    NotFoundError,
    WrongStateError,
)
from cloudrescue.remote.base import CommandResult, FileStat, TerminalRequest
from cloudrescue.remote.hostkeys import AnnouncedHostKeys
from cloudrescue.remote.local import LocalHost
from cloudrescue.remote.ssh import Endpoint, HostKeyCheck, JumpHost
from tests.guests import TREE_ROOT, mounted_guest

RESCUE_FINGERPRINT = "SHA256:" + "R" * 43
RESCUE_KEY_ENTRY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeRescueHostKeyForTests0000000000"


def rescue_fingerprint(boot: int) -> str:
    """The host key fingerprint of the rescue system's ``boot``-th start (new keys each boot)."""
    return RESCUE_FINGERPRINT if boot <= 1 else f"SHA256:{boot:0>43}"


def announcement(fingerprint: str) -> str:
    """The block cloud-init prints on the console for a host key."""
    return (
        "-----BEGIN SSH HOST KEY FINGERPRINTS-----\n"
        f"256 {fingerprint} root@rescue (ED25519)\n"
        "-----END SSH HOST KEY FINGERPRINTS-----\n"
    )


class FakeClock:
    """Monotonic time that advances only when someone sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept = 0.0
        self.on_sleep: Callable[[float], None] | None = None

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        if self.on_sleep is not None:
            self.on_sleep(seconds)
        self.now += seconds
        self.slept += seconds


@dataclass
class FakeServer:
    """One instance and what is pending on it."""

    info: ServerInfo
    console: str = "[    0.000000] Linux version 6.1.0 (guest boot)\n"
    task_done_at: float | None = None
    task_result: str | None = None
    admin_password: str | None = None
    announce_at: float | None = None
    printing: list[tuple[float, str]] = field(default_factory=list)  # (when, line) to come


@dataclass
class FakeCloud:
    """A ``CloudBackend`` in memory, with the faults a test asks for."""

    clock: FakeClock
    transition: float = 3.0
    cloud_name: str = "fake"
    announces_host_keys: bool = True  # False: a cloud without a console log (an OVH VPS)
    servers: dict[str, FakeServer] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    refuse_rescue: CloudError | None = None
    ignore_password: bool = False
    announce: bool = True
    poll_errors: int = 0
    fail_to_error: bool = False
    rescue_boots: int = 0
    announce_delay: float = 2.0
    late_rescues: int = 0  # the first ones print their block as they reach RESCUE: seen late
    rescue_block: Callable[[str], str] = announcement  # what the rescue prints, given its key
    line_interval: float = 0.0  # > 0: the rescue prints its block a line at a time, this apart
    console_reads: list[str] = field(default_factory=list)  # what each console read returned
    guest_block_at_shutdown: str | None = None
    block_after_rescue: str | None = None
    lose_rescue_answer: bool = False
    down_after_rescue: bool = False
    down: bool = False
    unrescue_errors: int = 0  # 503s before an unrescue request goes through
    lose_unrescue_answer: bool = False
    console_errors: int = 0
    unmark_errors: int = 0
    ignore_filters: bool = False  # list every server whatever the filters (an older nova's way)

    def add(
        self, name: str, address: str = "203.0.113.10", status: str = "ACTIVE", **extra: object
    ) -> ServerInfo:
        server_id = f"00000000-0000-4000-8000-{len(self.servers):012d}"
        info = ServerInfo(
            id=server_id,
            name=name,
            status=status,
            task_state=None,
            addresses=(Address(address, 4, "fixed", "public"),),
            image_id="image-1",
            **extra,  # type: ignore[arg-type]
        )
        self.servers[server_id] = FakeServer(info)
        return info

    def _server(self, server_id: str) -> FakeServer:
        if server_id not in self.servers:
            raise NotFoundError(f"instance {server_id}: not found")
        return self.servers[server_id]

    def _set(self, server: FakeServer, **changes: object) -> None:
        server.info = dataclasses.replace(server.info, **changes)  # type: ignore[arg-type]

    def _advance(self, server: FakeServer) -> None:
        """Finish a transition that is due; the rescue's cloud-init prints its host keys
        ``announce_delay`` seconds after the instance reached RESCUE, as on a real cloud."""
        if server.announce_at is not None and self.clock.now >= server.announce_at:
            block = self.rescue_block(rescue_fingerprint(self.rescue_boots))
            lines = (block + (self.block_after_rescue or "")).splitlines(keepends=True)
            start = server.announce_at
            server.printing += [(start + i * self.line_interval, x) for i, x in enumerate(lines)]
            server.announce_at = None
        while server.printing and self.clock.now >= server.printing[0][0]:
            server.console += server.printing.pop(0)[1]
        if server.task_done_at is None or self.clock.now < server.task_done_at:
            return
        status = "ERROR" if self.fail_to_error else server.task_result
        self._set(server, status=status, task_state=None)
        if status == "RESCUE":
            self.rescue_boots += 1
            if self.announce:
                late, self.late_rescues = self.late_rescues > 0, max(0, self.late_rescues - 1)
                server.announce_at = self.clock.now + (0.0 if late else self.announce_delay)
        server.task_done_at = server.task_result = None

    def find_server(self, name_or_id: str) -> ServerInfo:
        self.calls.append(f"find {name_or_id}")
        for server in self.servers.values():
            if name_or_id in (server.info.id, server.info.name):
                return server.info
        raise NotFoundError(f"no instance named or with id {name_or_id!r}")

    def get_server(self, server_id: str) -> ServerInfo:
        self.calls.append(f"get {server_id}")
        if self.down:
            raise CloudError(f"instance {server_id}: cannot reach the cloud API")
        if self.poll_errors:
            self.poll_errors -= 1
            raise CloudError(f"instance {server_id}: HTTP 503: service unavailable")
        server = self._server(server_id)
        self._advance(server)
        return server.info

    def list_servers(
        self,
        *,
        name_regex: str | None = None,
        tags: tuple[str, ...] = (),
        any_tags: tuple[str, ...] = (),
        not_any_tags: tuple[str, ...] = (),
        statuses: tuple[str, ...] = (),
    ) -> list[ServerInfo]:
        """Filtered as nova filters (the name regex case-insensitively, as MySQL's REGEXP;
        tags not at all for a server whose tags are None, as below nova 2.26), unless
        ``ignore_filters``; each call is in ``calls`` with what was asked."""
        asked = {
            "name": name_regex,
            "tags": ",".join(tags) or None,
            "tags-any": ",".join(any_tags) or None,
            "not-tags-any": ",".join(not_any_tags) or None,
            "status": ",".join(statuses) or None,
        }
        self.calls.append(" ".join(["list", *(f"{k}={v}" for k, v in asked.items() if v)]))
        for server in self.servers.values():  # the listing shows the state as of now
            self._advance(server)
        found = [server.info for server in self.servers.values()]
        if self.ignore_filters:
            return found

        def kept(info: ServerInfo) -> bool:
            have = set(info.tags or ())
            tagged = info.tags is None or (
                set(tags) <= have
                and (not any_tags or bool(set(any_tags) & have))
                and not set(not_any_tags) & have
            )
            named = name_regex is None or re.search(name_regex, info.name, re.IGNORECASE)
            return tagged and bool(named) and (not statuses or info.status in statuses)

        return [info for info in found if kept(info)]

    def find_image(self, name_or_id: str) -> ImageInfo:
        if name_or_id != "rescue-image":
            raise NotFoundError(f"no image named or with id {name_or_id!r}")
        return ImageInfo("image-rescue", "rescue-image")

    def rescue(
        self, server: ServerInfo, *, admin_password: str, image: ImageInfo | None
    ) -> RescueStarted:
        self.calls.append(f"rescue {server.id}")
        if self.refuse_rescue is not None:
            raise self.refuse_rescue
        fake = self._server(server.id)
        if self.guest_block_at_shutdown is not None:
            fake.console += self.guest_block_at_shutdown  # the guest, as it shuts down
        fake.admin_password = "not-what-was-sent" if self.ignore_password else admin_password
        fake.task_done_at, fake.task_result = self.clock.now + self.transition, "RESCUE"
        self._set(fake, task_state="rescuing")
        self.down = self.down_after_rescue
        if self.lose_rescue_answer:
            raise CloudError(f"rescue of {server.name}: HTTP 504: gateway timeout")
        return RescueStarted(admin_password=admin_password, stable_device=False)

    def unrescue(self, server_id: str) -> None:
        self.calls.append(f"unrescue {server_id}")
        if self.unrescue_errors:
            self.unrescue_errors -= 1
            raise CloudError(f"unrescue of {server_id}: HTTP 503: service unavailable")
        fake = self._server(server_id)
        if fake.info.task_state or fake.info.status != "RESCUE":
            raise WrongStateError(f"unrescue of {server_id}: HTTP 409: not in rescue")
        fake.task_done_at, fake.task_result = self.clock.now + self.transition, "ACTIVE"
        self._set(fake, task_state="unrescuing")
        if self.lose_unrescue_answer:
            raise CloudError(f"unrescue of {server_id}: HTTP 504: gateway timeout")

    def console_output(self, server_id: str, length: int | None = None) -> str:
        if self.console_errors:
            self.console_errors -= 1
            raise CloudError(f"console log of {server_id}: HTTP 503: service unavailable")
        server = self._server(server_id)
        self._advance(server)
        self.console_reads.append(server.console)
        return server.console

    def console_url(self, server_id: str, console_type: str = "novnc") -> str:
        return f"https://console.example/{server_id}/{console_type}"

    def set_marks(self, server_id: str, marks: Mapping[str, str]) -> None:
        self.calls.append(f"mark {server_id}")
        server = self._server(server_id)
        self._set(server, metadata={**server.info.metadata, **marks})

    def clear_marks(self, server_id: str, keys: tuple[str, ...]) -> None:
        self.calls.append(f"unmark {server_id}")
        if self.unmark_errors:
            self.unmark_errors -= 1
            raise CloudError(f"metadata of {server_id}: HTTP 503: service unavailable")
        server = self._server(server_id)
        kept = {k: v for k, v in server.info.metadata.items() if k not in keys}
        self._set(server, metadata=kept)


class RescueHost(LocalHost):
    """This machine, standing in for a logged-in rescue system.

    Its own files live under ``root`` (``/root/.ssh`` is ``<root>/root/.ssh``); paths already
    under ``root`` (a guest tree mounted there) are used as they are. Commands run here.
    """

    def __init__(self, endpoint: Endpoint, root: Path, fingerprint: str) -> None:
        self.endpoint = endpoint
        self.root = root
        self.closed = False
        self.cut = False  # set it: the connection is gone, every operation fails
        self.host_key_fingerprint = fingerprint
        self.channels: list[FakeChannel] = []

    def _at(self, path: str) -> str:
        if self.cut or self.closed:
            raise ConnectionFailedError(f"the SSH connection to {self.endpoint} was lost")
        return path if path.startswith(f"{self.root}/") else f"{self.root}{path}"

    def run(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes | None = None,
        check: bool = True,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
    ) -> CommandResult:
        self._at("/")
        return super().run(argv, stdin=stdin, check=check, timeout=timeout, env=env)

    def lstat(self, path: str) -> FileStat | None:
        return super().lstat(self._at(path))

    def readlink(self, path: str) -> str:
        return super().readlink(self._at(path))

    def listdir(self, path: str) -> list[str]:
        return super().listdir(self._at(path))

    def read_file(self, path: str) -> bytes:
        return super().read_file(self._at(path))

    def write_file(self, path: str, data: bytes, *, mode: int) -> None:
        super().write_file(self._at(path), data, mode=mode)

    def fsync(self, path: str) -> None:
        super().fsync(self._at(path))

    def rename(self, source: str, target: str) -> None:
        super().rename(self._at(source), self._at(target))

    def mkdir(self, path: str, mode: int) -> None:
        super().mkdir(self._at(path), mode)

    def chmod(self, path: str, mode: int) -> None:
        super().chmod(self._at(path), mode)

    def chown(self, path: str, uid: int, gid: int) -> None:
        super().chown(self._at(path), uid, gid)

    def unlink(self, path: str) -> None:
        super().unlink(self._at(path))

    def symlink(self, target: str, path: str) -> None:
        super().symlink(target, self._at(path))

    @property
    def description(self) -> str:
        return str(self.endpoint)

    def host_key_entry(self) -> str:
        return RESCUE_KEY_ENTRY

    def close(self) -> None:
        self.closed = True

    def open_channel(self, command: str, *, terminal: TerminalRequest | None = None) -> Any:
        self._at("/")
        channel = FakeChannel(command, terminal)
        self.channels.append(channel)
        return channel


@dataclass
class FakeChannel:
    """A channel a fake rescue opened: what it runs, its PTY; the terminal drives the rest."""

    command: str
    terminal: TerminalRequest | None
    closed: bool = False

    def close(self) -> None:
        self.closed = True


@dataclass
class FakeConnect:
    """``connect`` to the fake rescue: the cloud's password, the rescue's announced key."""

    cloud: FakeCloud
    root: Path
    hosts: list[RescueHost] = field(default_factory=list)
    make_host: Callable[[Endpoint, Path, str], RescueHost] = RescueHost
    refuse: int = 0  # this many logins fail (the rescue cannot be reached)

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
    ) -> RescueHost:
        announced: AnnouncedHostKeys | None = host_keys.announced
        presented = rescue_fingerprint(self.cloud.rescue_boots)
        if announced is None and not host_keys.trust_on_first_use:
            raise HostKeyError(f"{endpoint.host} presented {presented}: nothing to check")
        if announced is not None and presented not in announced.fingerprints:
            raise HostKeyError(f"{endpoint.host} presented {presented}: not announced")
        if self.refuse:
            self.refuse -= 1
            raise ConnectionFailedError(f"cannot reach the rescue system at {endpoint}")
        wanted = {s.admin_password for s in self.cloud.servers.values() if s.admin_password}
        if key is not None:  # a key authorised for root on the rescue
            authorized = self.root / "root/.ssh/authorized_keys"
            lines = authorized.read_text() if authorized.exists() else ""
            if f"{key.get_name()} {key.get_base64()}" not in lines:
                raise ConnectionFailedError(f"{endpoint} refused the key")
        elif password not in wanted:
            if on_retry is not None:
                on_retry("attempt 1: password refused")
            raise ConnectionFailedError(f"{endpoint} refused the rescue password")
        host = self.make_host(endpoint, self.root, presented)
        self.hosts.append(host)
        return host


@dataclass
class TreeDisks:
    """A disk session whose "disk" is a guest tree under tmp (``tests/guests.py``)."""

    tree: Path
    report: UnmountReport = field(default_factory=UnmountReport)
    mounted: list[MountedGuest] = field(default_factory=list)
    busy: int = 0  # this many unmount calls fail (a process on the rescue holds the disk)
    lazy: bool = False  # the unmount detaches lazily
    interrupt_unmounts: int = 0  # this many unmount calls are hit by Ctrl-C

    def choose_root(
        self, *, disk: str | None, volume_id: str | None, ask: AskRoot | None
    ) -> RootFilesystem:
        return TREE_ROOT

    def mount(self, *, root: RootFilesystem, chroot: bool, read_only: bool) -> MountedGuest:
        mount = dataclasses.replace(mounted_guest(self.tree, binds=chroot), read_only=read_only)
        self.mounted.append(mount)
        return mount

    def unmount(self) -> UnmountReport:
        if self.interrupt_unmounts:
            self.interrupt_unmounts -= 1
            raise KeyboardInterrupt
        if self.busy and self.mounted:
            self.busy -= 1
            return UnmountReport(failed=[f"could not unmount {self.tree}: target is busy"])
        done = UnmountReport(done=[f"unmounted {self.tree}"] if self.mounted else [])
        if self.lazy and self.mounted:
            done.lazy.append(f"{self.tree} was busy and was detached lazily")
        self.report.extend(done)
        self.mounted.clear()
        return done

    @property
    def leftover(self) -> list[str]:
        return [str(self.tree)] if self.mounted else []

    def undo_steps(self) -> tuple[UndoStep, ...]:
        return (UndoStep("mount", str(self.tree)),) if self.mounted else ()

    def adopt(self, steps: Sequence[UndoStep]) -> None:
        if steps:
            self.mounted = [mounted_guest(self.tree, binds=False)]


@dataclass
class RecordingEvents:
    """``Events`` that keep every stage and note, and can be made to raise at a stage."""

    messages: list[str] = field(default_factory=list)
    polls: int = 0
    interrupt_at: str | None = None

    def stage(self, message: str) -> None:
        self.messages.append(message)
        if self.interrupt_at is not None and message.startswith(self.interrupt_at):
            self.interrupt_at = None
            raise KeyboardInterrupt

    def poll(self, server: ServerInfo, elapsed: float) -> None:
        self.polls += 1

    def note(self, message: str) -> None:
        self.messages.append(message)

    def detail(self, message: str) -> None:
        self.messages.append(message)
