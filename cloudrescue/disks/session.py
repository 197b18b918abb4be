"""Mounting the instance's disk on the rescue system, and undoing all of it.

Typical use from the rescue workflow::

    with DiskSession(rescued.host) as disks:
        guest = disks.mount(disk=options.disk, volume_id=server.root_volume_id)
        ...  # guest.root is the mounted root, e.g. /mnt
    disks.report  # what unmounting did (lazy unmounts, failures)

Everything the session sets up (LVM activations or loop mappings, probe mounts, the guest
mounts, chroot binds, temporary directories, device nodes) is recorded as it happens and
undone in reverse by ``unmount``, which is idempotent and safe after a partial mount.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal, NoReturn

from cloudrescue.disks.commands import last_line, run_tool
from cloudrescue.disks.discovery import DiskInventory, Filesystem, discover
from cloudrescue.disks.errors import (
    MountFailedError,
    MountpointInUseError,
    NoDiskFoundError,
    SeveralRootsError,
)
from cloudrescue.disks.fstab import (
    NOT_MOUNTABLE,
    FstabEntry,
    SkipKind,
    guest_disk_names,
    parse_fstab,
    path_order,
    resolve_spec,
    safe_options,
    skip_reason,
)
from cloudrescue.disks.mountinfo import read_mounts
from cloudrescue.disks.probe import (
    ProbeResult,
    RootFilesystem,
    mount_device,
    no_replay_options,
    probe_filesystem,
    safe_subvolume,
)
from cloudrescue.disks.teardown import Teardown, UndoStep, UnmountReport
from cloudrescue.errors import CloudRescueError, DiskError
from cloudrescue.guestfs import GuestFS
from cloudrescue.remote.base import Host

MountKind = Literal["root", "fstab", "bind"]
AskRoot = Callable[[Sequence[RootFilesystem]], RootFilesystem]
"""Lets a user choose among several root filesystems (the CLI prompts on a terminal)."""
SERIAL_LENGTH = 20
CHROOT_BINDS: tuple[tuple[str, bool], ...] = (
    ("/dev", False),
    ("/dev/pts", False),
    ("/proc", False),
    ("/sys", True),
    ("/run", False),
)


def _selector(fs: Filesystem) -> str:
    return f"{fs.lv.vg_name}/{fs.lv.lv_name}" if fs.lv else fs.device


def _read_fstab(guest: GuestFS) -> str:
    """The guest's fstab text; empty when absent or unreadable (fix-fstab deals with that)."""
    try:
        return guest.read_text("/etc/fstab") or ""
    except (CloudRescueError, OSError):
        return ""


class _UnusableMountpointError(Exception):
    """A guest mountpoint that must not be used (the message says why)."""


@dataclass(frozen=True)
class MountRecord:
    """One mount made for the guest."""

    guest_path: str
    host_path: str
    source: str
    fstype: str
    options: tuple[str, ...]
    kind: MountKind
    uuid: str | None = None


@dataclass(frozen=True)
class SkippedMount:
    """An fstab line (or chroot bind) not mounted, and why; ``missing-device`` is for fix-fstab."""

    spec: str
    mountpoint: str
    fstype: str
    kind: SkipKind
    reason: str


@dataclass(frozen=True)
class MountedGuest:
    """The instance's filesystems as mounted on the rescue system."""

    root: str
    filesystem: RootFilesystem
    mounts: tuple[MountRecord, ...]
    skipped: tuple[SkippedMount, ...]
    fstab: tuple[FstabEntry, ...]
    read_only: bool
    device_mapper: bool | None

    @property
    def device(self) -> str:
        """The rescue system's device of the root filesystem (e.g. ``/dev/vdb1``)."""
        return self.filesystem.filesystem.device

    @property
    def lvm(self) -> bool:
        """Whether the root is an LVM logical volume."""
        return self.filesystem.filesystem.lv is not None

    @property
    def missing_devices(self) -> list[SkippedMount]:
        """fstab lines whose device is not on the instance's disk."""
        return [skip for skip in self.skipped if skip.kind == "missing-device"]


@dataclass
class DiskSession:
    """Discovery, root choice, mounting and unmounting on one host, with full undo."""

    host: Host
    mountpoint: str = "/mnt"
    scope: Sequence[str] | None = None
    teardown: Teardown = field(init=False)
    report: UnmountReport = field(init=False, default_factory=UnmountReport)
    guest: MountedGuest | None = field(init=False, default=None)
    _inventory: DiskInventory | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.teardown = Teardown(self.host)

    def __enter__(self) -> DiskSession:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.unmount()

    # -- discovery and root choice ----------------------------------------------------------

    def discover(self) -> DiskInventory:
        """The host's block devices sorted out (done once a session; LVs are made usable)."""
        if self._inventory is None:
            self._inventory = discover(self.host, self.teardown, scope=self.scope)
        return self._inventory

    def probe(self, *, disk: str | None = None) -> list[ProbeResult]:
        """Look inside every candidate filesystem (or those ``disk`` designates)."""
        inventory = self.discover()
        candidates = inventory.candidates
        if disk is not None:
            candidates = [fs for fs in candidates if fs.matches(disk)]
            if not candidates:
                self._no_such_disk(disk, inventory)
        return [probe_filesystem(self.host, self.teardown, fs, inventory) for fs in candidates]

    def choose_root(
        self,
        *,
        disk: str | None = None,
        volume_id: str | None = None,
        ask: AskRoot | None = None,
    ) -> RootFilesystem:
        """The instance's root filesystem.

        ``disk`` (device path or name, UUID, LABEL, LV name, whole disk) picks among several;
        otherwise a ``volume_id`` prefers the disk whose serial is its first 20 characters,
        and ``ask`` (an interactive user) chooses among those left. Raises
        ``SeveralRootsError`` or ``NoDiskFoundError`` saying what was seen.
        """
        probes = self.probe(disk=disk)
        roots = [probe.root for probe in probes if probe.root is not None]
        if disk is None and volume_id:
            serial = volume_id[:SERIAL_LENGTH].lower()
            preferred = [r for r in roots if (r.filesystem.serial or "").lower() == serial]
            roots = preferred or roots
        if len(roots) == 1:
            return roots[0]
        if roots and ask is not None:
            return ask(roots)
        if roots:
            listing = "\n".join(f"  {root.describe()}" for root in roots)
            raise SeveralRootsError(
                f"several root filesystems found on {self.host.description}:\n{listing}\n"
                "pass --disk with the one to use (device, UUID or label)",
                candidates=[_selector(root.filesystem) for root in roots],
                hint=f"e.g. --disk {_selector(roots[0].filesystem)}",
            )
        self._no_root(disk, probes)

    def _no_root(self, disk: str | None, probes: list[ProbeResult]) -> NoReturn:
        inventory = self.discover()
        looked = "\n".join(f"  {probe.filesystem.describe()}: {probe.problem}" for probe in probes)
        subject = f"--disk {disk}" if disk else "the instance's disks"
        raise NoDiskFoundError(
            f"no root filesystem (etc/os-release or etc/fstab) on {subject}.\n"
            f"Devices seen on {self.host.description}:\n{inventory.describe()}"
            + (f"\nLooked inside:\n{looked}" if looked else "")
        )

    def _no_such_disk(self, disk: str, inventory: DiskInventory) -> NoReturn:
        for device in inventory.devices:
            for node in device.walk():
                if disk in (node.path, node.name, node.uuid, node.label) and (
                    device.path in inventory.rescue_disks
                ):
                    raise DiskError(
                        f"--disk {disk} is on {device.path}, the rescue system's own disk"
                    )
        other = [fs for fs in inventory.filesystems if fs.matches(disk)]
        if other:
            raise NoDiskFoundError(
                f"--disk {disk} is {other[0].describe()}: not a Linux root filesystem"
            )
        raise NoDiskFoundError(
            f"nothing matches --disk {disk}. Devices seen on {self.host.description}:\n"
            f"{inventory.describe()}"
        )

    # -- mounting ---------------------------------------------------------------------------

    def mount(
        self,
        *,
        disk: str | None = None,
        volume_id: str | None = None,
        root: RootFilesystem | None = None,
        ask: AskRoot | None = None,
        chroot: bool = False,
        read_only: bool = False,
    ) -> MountedGuest:
        """Mount the instance's root on the mountpoint, then its fstab filesystems.

        ``root`` skips the choice (from this session's ``choose_root``), ``ask`` is passed to
        it; ``chroot`` adds ``/dev``,
        ``/dev/pts``, ``/proc``, ``/sys`` and ``/run`` binds. On any failure everything done
        so far is undone before the error propagates.
        """
        if self.guest is not None:
            raise DiskError(f"the instance is already mounted on {self.guest.root}")
        try:
            target = self._prepare_mountpoint()
            chosen = root or self.choose_root(disk=disk, volume_id=volume_id, ask=ask)
            fs = chosen.filesystem
            if fs.read_only and not read_only:
                raise MountFailedError(f"{fs.device} is attached read-only: it cannot be repaired")
            options = self._options(fs, [], read_only)
            if chosen.subvolume:
                if not safe_subvolume(chosen.subvolume):
                    raise MountFailedError(
                        f"refusing the btrfs subvolume name {chosen.subvolume!r} "
                        "(it would change the mount options)"
                    )
                options.append(f"subvol={chosen.subvolume}")
            mount_device(self.host, self.teardown, fs.device, target, fs.fstype, options)
            mounts = [
                MountRecord(
                    "/", target, fs.device, fs.fstype or "auto", tuple(options), "root", fs.uuid
                )
            ]
            guest = GuestFS(self.host, target)
            entries = parse_fstab(_read_fstab(guest))
            skipped: list[SkippedMount] = []
            self._mount_fstab(guest, chosen, entries, read_only, mounts, skipped)
            if chroot:
                self._bind_pseudo(guest, mounts, skipped)
            self.guest = MountedGuest(
                root=target,
                filesystem=chosen,
                mounts=tuple(mounts),
                skipped=tuple(skipped),
                fstab=tuple(entries),
                read_only=read_only,
                device_mapper=self.discover().device_mapper,
            )
            return self.guest
        except BaseException:
            self.unmount()
            raise

    def _options(self, fs: Filesystem, wanted: list[str], read_only: bool) -> list[str]:
        """``wanted`` (fstab's, without ro/rw), read-only with no journal replay in a dry run."""
        options = [*wanted, *(no_replay_options(fs.fstype) if read_only else [])]
        if fs.fstype == "xfs" and "nouuid" not in options and self.discover().uuid_clash(fs):
            options.append("nouuid")
        return options

    def _prepare_mountpoint(self) -> str:
        path = posixpath.normpath(self.mountpoint)
        info = self.host.lstat(path)
        if info is None:
            try:
                self.host.mkdir(path, 0o755)
            except OSError as error:
                raise MountFailedError(f"cannot create the mountpoint {path}: {error}") from error
            self.teardown.add(UndoStep("dir", path))
        elif info.is_symlink or not info.is_dir:
            raise MountpointInUseError(f"{path} is not a directory on {self.host.description}")
        real = run_tool(self.host, ["realpath", "-e", "--", path], check=False)
        canonical = real.stdout.strip() if real.ok and real.stdout.strip() else path
        busy = [m for m in read_mounts(self.host) if m.mountpoint == canonical]
        if busy:
            raise MountpointInUseError(
                f"{canonical} already has {busy[-1].source} ({busy[-1].fstype}) mounted on it",
                hint=f"unmount it first (`umount -R {canonical}`) or choose another mountpoint",
            )
        return canonical

    def _mount_fstab(
        self,
        guest: GuestFS,
        root: RootFilesystem,
        entries: list[FstabEntry],
        read_only: bool,
        mounts: list[MountRecord],
        skipped: list[SkippedMount],
    ) -> None:
        inventory = self.discover()
        own = inventory.on_disks(root.filesystem.disks)
        names = guest_disk_names(entries)
        for entry in path_order(entries):
            if entry.mountpoint == "/":
                continue

            def skip(kind: SkipKind, reason: str, entry: FstabEntry = entry) -> None:
                skipped.append(
                    SkippedMount(entry.spec, entry.mountpoint, entry.fstype, kind, reason)
                )

            why = skip_reason(entry)
            if why is not None:
                skip(*why)
                continue
            fs = resolve_spec(entry.spec, own, root.filesystem.disk, names)
            if fs is None:
                skip("missing-device", f"{entry.spec} is not on the instance's disk")
                continue
            if fs.fstype in NOT_MOUNTABLE or fs.fstype is None:
                skip("not-mountable", f"{fs.device} holds {fs.fstype or 'no filesystem'}")
                continue
            if fs.device == root.filesystem.device and fs.fstype != "btrfs":
                skip("not-mountable", f"{fs.device} is the root filesystem itself")
                continue
            try:
                where = self._guest_dir(guest, entry.mountpoint, mounts)
            except _UnusableMountpointError as error:
                skip("bad-mountpoint", str(error))
                continue
            options = self._options(fs, safe_options(entry), read_only)
            try:
                mount_device(self.host, self.teardown, fs.device, where, fs.fstype, options)
            except MountFailedError as error:
                skip("mount-failed", error.message)
                continue
            mounts.append(
                MountRecord(
                    entry.mountpoint, where, fs.device, fs.fstype, tuple(options), "fstab", fs.uuid
                )
            )

    def _guest_dir(self, guest: GuestFS, path: str, mounts: list[MountRecord]) -> str:
        """Host directory for guest ``path``: a real directory, no symlink on the way."""
        try:
            resolved = guest.resolve(path)
        except CloudRescueError as error:
            raise _UnusableMountpointError(f"mountpoint {path}: {error.message}") from error
        if resolved.guest != path.rstrip("/"):
            raise _UnusableMountpointError(
                f"mountpoint {path} goes through a symlink in the guest (to {resolved.guest})"
            )
        info = self.host.lstat(resolved.host)
        if info is None or not info.is_dir:
            raise _UnusableMountpointError(f"mountpoint {path} is not a directory in the guest")
        if any(record.host_path == resolved.host for record in mounts):
            raise _UnusableMountpointError(f"{path} is already mounted by an earlier fstab line")
        return resolved.host

    def _bind_pseudo(
        self, guest: GuestFS, mounts: list[MountRecord], skipped: list[SkippedMount]
    ) -> None:
        for path, recursive in CHROOT_BINDS:
            try:
                where = self._guest_dir(guest, path, mounts)
            except _UnusableMountpointError as error:
                skipped.append(SkippedMount(path, path, "bind", "bind", str(error)))
                continue
            flag = "--rbind" if recursive else "--bind"
            result = run_tool(self.host, ["mount", flag, path, where], check=False)
            if result.ok:
                self.teardown.add(UndoStep("mount", where, recursive=recursive))
                # Unmounting the bind must never propagate to the rescue system's own mounts.
                result = run_tool(self.host, ["mount", "--make-rslave", where], check=False)
            if not result.ok:
                raise MountFailedError(f"cannot bind {path} on {where}: {last_line(result)}")
            mounts.append(MountRecord(path, where, path, "bind", (flag,), "bind"))

    # -- unmounting -------------------------------------------------------------------------

    def unmount(self) -> UnmountReport:
        """Undo everything (binds, fstab mounts, root, LVM, loops, temp dirs), newest first.

        Idempotent; returns what this call did, also added to ``report``.
        """
        report = self.teardown.undo_all()
        self.report.extend(report)
        if not self.teardown.steps:
            self.guest = None
            self._inventory = None
        return report

    def undo_steps(self) -> tuple[UndoStep, ...]:
        """What ``unmount`` would undo, oldest first (saved so another process can)."""
        return tuple(self.teardown.steps)

    def adopt(self, steps: Sequence[UndoStep]) -> None:
        """Take over what another session set up (its ``undo_steps``), to unmount it."""
        self.teardown.steps = list(steps)

    @property
    def leftover(self) -> list[str]:
        """What is still set up on the rescue system (empty once everything was undone)."""
        return [step.target for step in reversed(self.teardown.steps)]
