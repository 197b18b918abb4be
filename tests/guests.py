"""Guests on local directory trees: the ``GuestFS`` / ``MountedGuest`` / ``Guest`` values that
fixes and actions receive, built for a tree under tmp instead of a mounted disk."""

from __future__ import annotations

from pathlib import Path

from cloudrescue.disks.discovery import Filesystem
from cloudrescue.disks.fstab import parse_fstab
from cloudrescue.disks.probe import RootFilesystem
from cloudrescue.disks.session import MountedGuest, MountRecord, SkippedMount
from cloudrescue.guest import Guest
from cloudrescue.guestfs import GuestFS
from cloudrescue.remote.local import LocalHost

TREE_FILESYSTEM = Filesystem(
    "/dev/vdb1", "ext4", 1 << 30, "/dev/vdb", ("/dev/vdb",), uuid="root-uuid"
)
TREE_ROOT = RootFilesystem(TREE_FILESYSTEM, "Debian GNU/Linux 12", "debian", True)


def guest_fs(root: Path, *, dry_run: bool = False) -> GuestFS:
    """A ``GuestFS`` on ``root`` through the real local host."""
    return GuestFS(LocalHost(), str(root), stamp=lambda: "T", dry_run=dry_run)


def mounted_guest(
    root: Path,
    *,
    missing: tuple[str, ...] = (),
    mounted: tuple[str, ...] = (),
    binds: bool = False,
) -> MountedGuest:
    """A ``MountedGuest`` for a tree: ``missing`` fstab specs, ``mounted`` mountpoints."""
    fstab = parse_fstab((root / "etc/fstab").read_text()) if (root / "etc/fstab").exists() else []
    records = [MountRecord("/", str(root), "/dev/vdb1", "ext4", (), "root")]
    records += [
        MountRecord(point, str(root) + point, "/dev/vdb2", "ext4", (), "fstab") for point in mounted
    ]
    if binds:
        records += [
            MountRecord(p, str(root) + p, p, "bind", ("--bind",), "bind")
            for p in ("/dev", "/proc", "/sys", "/run")
        ]
    skipped = [
        SkippedMount(e.spec, e.mountpoint, e.fstype, "missing-device", "not on the disk")
        for e in fstab
        if e.spec in missing
    ]
    return MountedGuest(
        root=str(root),
        filesystem=TREE_ROOT,
        mounts=tuple(records),
        skipped=tuple(skipped),
        fstab=tuple(fstab),
        read_only=False,
        device_mapper=None,
    )


def guest_on(
    root: Path,
    *,
    dry_run: bool = False,
    missing: tuple[str, ...] = (),
    mounted: tuple[str, ...] = (),
    binds: bool = False,
) -> Guest:
    """The ``Guest`` a fix receives, for the tree at ``root`` (see ``mounted_guest``)."""
    mount = mounted_guest(root, missing=missing, mounted=mounted, binds=binds)
    return Guest(guest_fs(root, dry_run=dry_run), mount)


def guest_of(files: GuestFS) -> Guest:
    """``files`` as the ``Guest`` a fix receives (mounted as a plain tree)."""
    return Guest(files, mounted_guest(Path(files.root)))
