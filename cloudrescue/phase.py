"""One mount phase of a rescue: what a playbook's steps work on, opened and closed in one place.

Every command that works on an instance's disk reads the same way::

    with workflow.session(server, command=...) as rescued:
        with open_phase(rescued, "root", DiskChoice(), dry_run=False, events=events) as phase:
            run_steps(playbook, values, phase)

``open_phase`` finds the instance's disk on the rescue system and, as the playbook's ``mount``
says, mounts it (``root``, read-only in a dry run), only finds it (``unmounted``: fsck and
friends) or leaves it alone (``none``). Leaving the phase undoes everything in reverse: when
the block fails after changing guest files, they are restored from their backups; then the
disk is synced and unmounted, and ``phase.unmount`` says how that went.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from cloudrescue.disks import AskRoot, DiskSession, MountedGuest, RootFilesystem, UnmountReport
from cloudrescue.errors import (
    CloudRescueError,
    ConnectionFailedError,
    DiskStillMountedError,
    FixFailedError,
    InvalidInputError,
)
from cloudrescue.events import Events
from cloudrescue.guest import Guest
from cloudrescue.guestfs import GuestFS
from cloudrescue.remote.base import Host

if TYPE_CHECKING:
    from cloudrescue.rescue import RescuedInstance

MountMode = Literal["root", "none", "unmounted"]
MOUNT_MODES: tuple[MountMode, ...] = ("root", "none", "unmounted")


@dataclass(frozen=True)
class DiskChoice:
    """Which filesystem is the instance's root (``--disk``), and where to mount it."""

    selector: str | None = None
    mountpoint: str = "/mnt"
    ask: AskRoot | None = None  # choose among several roots (else SeveralRootsError)


class Disks(Protocol):
    """What a phase needs of a disk session (``DiskSession``; a local tree in unit tests)."""

    report: UnmountReport

    def choose_root(
        self, *, disk: str | None, volume_id: str | None, ask: AskRoot | None
    ) -> RootFilesystem:
        """The instance's root filesystem, found without mounting it."""
        ...

    def mount(self, *, root: RootFilesystem, chroot: bool, read_only: bool) -> MountedGuest:
        """Mount ``root`` and the guest's fstab filesystems (and the chroot binds)."""
        ...

    def unmount(self) -> UnmountReport:
        """Undo everything the session did, newest first (idempotent: retries what is left)."""
        ...

    @property
    def leftover(self) -> list[str]:
        """What is still set up on the rescue system after ``unmount`` (empty when clean)."""
        ...


DiskOpener = Callable[[Host, str], Disks]
"""Opens a disk session on the rescue host with the given mountpoint."""


def open_disk_session(host: Host, mountpoint: str) -> DiskSession:
    """The real disk session: ``lsblk``, LVM, probe mounts, fstab, binds on the rescue."""
    return DiskSession(host, mountpoint=mountpoint)


@dataclass
class Phase:
    """The rescue system, the instance's disk as far as this phase has it, and check mode."""

    host: Host
    address: str
    dry_run: bool
    root: RootFilesystem | None = None
    guest: Guest | None = None
    unmount: UnmountReport | None = None

    @property
    def mount(self) -> MountedGuest | None:
        """How the guest is mounted (``None`` before or without mounting)."""
        return self.guest.mount if self.guest is not None else None

    def need_guest(self) -> Guest:
        """The mounted guest; ``InvalidInputError`` when this phase does not mount it."""
        if self.guest is None:
            raise InvalidInputError("this needs the guest mounted (mount: root)")
        return self.guest

    def need_root(self) -> RootFilesystem:
        """The instance's root filesystem; ``InvalidInputError`` in a ``mount: none`` phase."""
        if self.root is None:
            raise InvalidInputError("this needs the instance's disk (mount: root or unmounted)")
        return self.root


def _restore(phase: Phase, error: BaseException, events: Events) -> BaseException:
    """Undo the guest files changed before ``error``; the error to raise instead (if any)."""
    guest = phase.guest
    if guest is None or guest.dry_run or not guest.files.changes:
        return error
    undone = guest.files.rollback()
    restored = f"restored {len(undone.restored)} change(s) from backups"
    if undone.failed:
        restored += f"; could not restore {len(undone.failed)}: {'; '.join(undone.failed)}"
    events.note(restored)
    if not isinstance(error, Exception):
        return error  # Ctrl-C: restored, and still an interruption
    message = error.message if isinstance(error, CloudRescueError) else str(error)
    message = message or type(error).__name__  # a bare ``raise ValueError`` says what it is
    failed = FixFailedError(f"{message}; {restored}")
    failed.__cause__ = error
    return failed


def _reconnect(reconnect: Callable[[], None], events: Events) -> bool:
    """Log in to the rescue again (the connection was cut); whether that worked."""
    try:
        reconnect()
    except CloudRescueError as error:
        events.note(f"could not log in to the rescue system again: {error.message}")
        return False
    return True


def unmount_disks(
    disks: Disks, name: str, events: Events, reconnect: Callable[[], None]
) -> UnmountReport:
    """Undo the disk session; ``DiskStillMountedError`` unless it is all cleanly undone.

    What is left after a first pass (the SSH connection cut, a mount still busy) gets a
    second one, over a new connection. A first Ctrl-C while unmounting does not stop it (the
    instance must not be unrescued with its disk mounted); a second one does, and keeps the
    instance in rescue.
    """
    interrupted = False
    try:
        report = disks.unmount()
        if disks.leftover and _reconnect(reconnect, events):
            report = disks.unmount()
    except KeyboardInterrupt:
        interrupted = True
        events.note("interrupted while unmounting: finishing the unmount first")
        try:
            report = disks.unmount()
        except KeyboardInterrupt:
            report = UnmountReport(failed=["unmounting was interrupted twice"])
    left, lazy = disks.leftover, report.lazy
    if left or lazy:
        problems = [*report.failed, *lazy] or [f"still set up: {', '.join(left)}"]
        raise DiskStillMountedError(
            f"{name} stays in rescue: its disk is not cleanly unmounted from the rescue "
            f"system ({'; '.join(problems)})",
            hint=f"unrescuing now could lose data; when nothing uses the disk any more (or to "
            f"accept an unclean unmount), run `cloudrescue unrescue {name}`",
        )
    if interrupted:
        raise KeyboardInterrupt  # unmounted: now the interruption goes on (and unrescues)
    return report


@contextmanager
def open_phase(
    rescued: RescuedInstance,
    mount: MountMode,
    disk: DiskChoice,
    *,
    dry_run: bool,
    events: Events,
    chroot: bool = False,
    open_disks: DiskOpener = open_disk_session,
) -> Iterator[Phase]:
    """The phase ``mount`` asks for on the rescued instance; always unmounted on the way out."""
    phase = Phase(rescued.host, rescued.address, dry_run)
    if mount == "none":
        events.stage("running the steps on the rescue system")
        yield phase
        return
    server = rescued.server
    volume_id = server.volume_ids[0] if server.volume_backed else None
    disks = open_disks(rescued.host, disk.mountpoint)
    try:
        if mount == "root":
            events.stage("finding and mounting the instance's disk")
        else:
            events.stage("finding the instance's disk (left unmounted)")
        phase.root = disks.choose_root(disk=disk.selector, volume_id=volume_id, ask=disk.ask)
        if mount == "root":
            mounted = disks.mount(root=phase.root, chroot=chroot, read_only=dry_run)
            os_name = mounted.filesystem.os_name or "unknown OS"
            events.note(f"mounted {mounted.device} ({os_name}) on {mounted.root}")
            phase.guest = Guest(GuestFS(rescued.host, mounted.root, dry_run=dry_run), mounted)
            events.stage("checking what to change" if dry_run else "applying the fix")
        else:
            events.note(f"root filesystem: {phase.root.describe()}")
            events.stage("running the steps")
        try:
            yield phase
        except BaseException as error:
            if isinstance(error, ConnectionFailedError):
                _reconnect(rescued.host.reconnect, events)  # to restore the guest's files
            replacement = _restore(phase, error, events)
            if replacement is error:
                raise
            raise replacement from error
        if mount == "root":
            events.stage("syncing and unmounting the disk")
    finally:
        phase.unmount = unmount_disks(disks, rescued.server.name, events, rescued.host.reconnect)
