"""Telling which candidate filesystem is the instance's root, by looking inside each one.

Each candidate is mounted read-only (without journal replay) on a private directory made by
``mktemp -d`` on the rescue system, checked for ``etc/os-release`` (or ``usr/lib/os-release``)
and ``etc/fstab`` through root-anchored guest paths, then unmounted. Btrfs is looked at in its
default subvolume first, then in its top-level subvolumes (``@``, ``root``, ``@rootfs``...).
"""

from __future__ import annotations

import posixpath
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from cloudrescue.disks.commands import last_line, run_tool
from cloudrescue.disks.discovery import DiskInventory, Filesystem, human_size
from cloudrescue.disks.errors import MountFailedError
from cloudrescue.disks.mountinfo import read_mounts
from cloudrescue.disks.teardown import Teardown, UndoStep
from cloudrescue.errors import CloudRescueError
from cloudrescue.guestfs import GuestFS
from cloudrescue.remote.base import Host

PREFERRED_SUBVOLUMES = ("@", "root", "@rootfs", "@root", "rootfs")
BTRFS_TOP_LEVEL = "subvolid=5"


@dataclass(frozen=True)
class RootFilesystem:
    """A filesystem that holds an operating system root."""

    filesystem: Filesystem
    os_name: str | None
    os_id: str | None
    has_fstab: bool
    subvolume: str | None = None

    def describe(self) -> str:
        fs = self.filesystem
        where = fs.name + (f" (subvolume {self.subvolume})" if self.subvolume else "")
        return (
            f"{where}: {fs.fstype}, {human_size(fs.size)}, "
            f"{self.os_name or 'unknown OS (no os-release)'}"
            + (f", UUID {fs.uuid}" if fs.uuid else "")
        )


@dataclass(frozen=True)
class ProbeResult:
    """What looking inside one candidate found: a root, or why it is not one."""

    filesystem: Filesystem
    root: RootFilesystem | None
    problem: str | None = None


def parse_os_release(text: str) -> dict[str, str]:
    """``KEY=value`` pairs of an os-release file (shell quoting undone)."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, raw = line.strip().partition("=")
        if not sep or key.startswith("#") or not re.fullmatch(r"[A-Z0-9_]+", key):
            continue
        try:
            parts = shlex.split(raw)
        except ValueError:
            parts = [raw.strip("\"'")]
        values[key] = " ".join(parts)
    return values


def os_display_name(values: dict[str, str]) -> str | None:
    """``PRETTY_NAME``, else ``NAME VERSION``, else ``ID``."""
    if values.get("PRETTY_NAME"):
        return values["PRETTY_NAME"]
    name = " ".join(part for part in (values.get("NAME"), values.get("VERSION")) if part)
    return name or values.get("ID")


# btrfs replays its log tree even on a read-only mount unless told not to: ``rescue=`` since
# Linux 5.9 (the only spelling recent kernels accept: 6.18 refuses the other), ``nologreplay``
# before (from 4.5).
BTRFS_NO_LOG_REPLAY = "rescue=nologreplay"
BTRFS_NO_LOG_REPLAY_OLD = "nologreplay"


def no_replay_options(fstype: str | None) -> list[str]:
    """Read-only mount options that never replay the filesystem's journal or log."""
    if fstype in ("ext3", "ext4"):
        return ["ro", "noload"]
    if fstype == "xfs":
        return ["ro", "norecovery"]
    if fstype == "btrfs":
        return ["ro", BTRFS_NO_LOG_REPLAY]
    return ["ro"]


def safe_subvolume(name: str) -> bool:
    """Whether a btrfs subvolume name can go into ``-o subvol=`` as it is: no option
    separator (``,``), no ``=``, quote or backslash that libmount or the kernel might read
    otherwise, nothing unprintable (a newline)."""
    return bool(name) and not any(char in name for char in ',=\\"\'') and name.isprintable()


def probe_options(fs: Filesystem, inventory: DiskInventory) -> list[str]:
    """Read-only options that never replay a journal (and dodge XFS UUID clashes)."""
    options = no_replay_options(fs.fstype)
    if fs.fstype == "xfs" and inventory.uuid_clash(fs):
        options.append("nouuid")
    return options


def kernel_messages(host: Host, device: str) -> str:
    """The last kernel log lines about ``device`` (empty when dmesg is unavailable)."""
    result = run_tool(host, ["dmesg"], check=False, timeout=30)
    about = re.compile(rf"\((?:device )?{re.escape(posixpath.basename(device))}\)")
    lines = [line.strip() for line in result.stdout.splitlines() if about.search(line)]
    return "; ".join(lines[-2:])


def mount_device(
    host: Host,
    teardown: Teardown,
    device: str,
    target: str,
    fstype: str | None,
    options: Sequence[str],
) -> UndoStep:
    """Mount and record it; ``MountFailedError`` with what mount and the kernel said."""
    argv = ["mount", *(["-t", fstype] if fstype else [])]
    argv += ["-o", ",".join(options)] if options else []
    result = run_tool(host, [*argv, device, target], check=False, timeout=600)
    if not result.ok and BTRFS_NO_LOG_REPLAY in options:
        # A kernel before 5.9 knows only the old spelling; never mount without either.
        older = [BTRFS_NO_LOG_REPLAY_OLD if o == BTRFS_NO_LOG_REPLAY else o for o in options]
        retry = [*argv[:-1], ",".join(older), device, target]  # argv ends with -o OPTIONS
        again = run_tool(host, retry, check=False, timeout=600)
        result = again if again.ok else result
    if not result.ok:
        kernel = kernel_messages(host, device)
        raise MountFailedError(
            f"cannot mount {device} on {target}: {last_line(result)}"
            + (f" (kernel: {kernel})" if kernel else "")
        )
    step = teardown.add(UndoStep("mount", target))
    if fstype == "btrfs":
        _check_btrfs_source(host, teardown, step, device)
    return step


def _check_btrfs_source(host: Host, teardown: Teardown, step: UndoStep, device: str) -> None:
    """Refuse a btrfs mount the kernel served from another device with the same fsid.

    Kernels before 6.7 mount an already-registered filesystem with the same UUID (the rescue
    image's own, when it is the instance's image) instead of the device asked for.
    """
    mounted = [m for m in read_mounts(host) if m.mountpoint == step.target]
    source = mounted[-1].source if mounted else device
    if posixpath.basename(source) != posixpath.basename(device):
        teardown.undo(step)
        raise MountFailedError(
            f"mounting {device} gave {source} instead: both carry the same btrfs UUID and this "
            "kernel cannot tell them apart",
            hint="rescue the instance with a different rescue image than its own",
        )


def make_temp_dir(host: Host, teardown: Teardown) -> UndoStep:
    """A private directory on the host, recorded for removal."""
    path = run_tool(host, ["mktemp", "-d", "-t", "cloudrescue-probe.XXXXXXXX"]).stdout.strip()
    return teardown.add(UndoStep("dir", path))


def _looks_like_root(host: Host, directory: str) -> tuple[dict[str, str] | None, bool]:
    guest = GuestFS(host, directory)
    os_release = None
    for path in ("/etc/os-release", "/usr/lib/os-release"):
        try:
            text = guest.read_text(path)
        except (CloudRescueError, OSError):
            text = None
        if text is not None:
            os_release = parse_os_release(text)
            break
    try:
        has_fstab = guest.stat("/etc/fstab") is not None
    except (CloudRescueError, OSError):
        has_fstab = False
    return os_release, has_fstab


def _root(
    fs: Filesystem, found: tuple[dict[str, str] | None, bool], subvolume: str | None
) -> RootFilesystem | None:
    os_release, has_fstab = found
    if os_release is None and not has_fstab:
        return None
    return RootFilesystem(
        filesystem=fs,
        os_name=os_display_name(os_release) if os_release else None,
        os_id=(os_release or {}).get("ID"),
        has_fstab=has_fstab,
        subvolume=subvolume,
    )


def _btrfs_subvolumes(host: Host, top: str) -> tuple[list[str], list[str]]:
    """Top-level subvolume names, preferred names first (known names when btrfs is missing),
    and those refused (``safe_subvolume``)."""
    result = run_tool(host, ["btrfs", "subvolume", "list", top], check=False)
    if result.ok:
        names = [
            line.split(" path ", 1)[1] for line in result.stdout.splitlines() if " path " in line
        ]
    else:
        names = list(PREFERRED_SUBVOLUMES)
    names = [name for name in names if "/" not in name]
    refused = [name for name in names if not safe_subvolume(name)]
    names = [name for name in names if safe_subvolume(name)]
    return sorted(
        dict.fromkeys(names),
        key=lambda name: (
            PREFERRED_SUBVOLUMES.index(name)
            if name in PREFERRED_SUBVOLUMES
            else len(PREFERRED_SUBVOLUMES),
            name,
        ),
    ), refused


def probe_filesystem(
    host: Host, teardown: Teardown, fs: Filesystem, inventory: DiskInventory
) -> ProbeResult:
    """Mount ``fs`` read-only on a temporary directory and look for an OS root in it."""
    directory = make_temp_dir(host, teardown)
    options = probe_options(fs, inventory)
    try:
        mounted = mount_device(host, teardown, fs.device, directory.target, fs.fstype, options)
        root = _root(fs, _looks_like_root(host, directory.target), None)
        if root is not None or fs.fstype != "btrfs":
            return ProbeResult(fs, root, None if root else "no etc/os-release or etc/fstab")
        teardown.undo(mounted)
        mounted = mount_device(
            host, teardown, fs.device, directory.target, fs.fstype, [*options, BTRFS_TOP_LEVEL]
        )
        names, refused = _btrfs_subvolumes(host, directory.target)
        for name in names:
            info = host.lstat(posixpath.join(directory.target, name))
            if info is None or not info.is_dir:
                continue
            root = _root(fs, _looks_like_root(host, posixpath.join(directory.target, name)), name)
            if root is not None:
                return ProbeResult(fs, root)
        problem = "no subvolume with etc/os-release or etc/fstab"
        if refused:
            shown = ", ".join(repr(name) for name in refused)
            problem += f" (refused the subvolume names {shown}: they would change mount options)"
        return ProbeResult(fs, None, problem)
    except MountFailedError as error:
        return ProbeResult(fs, None, error.message)
    finally:
        probe_mounts = [
            s for s in teardown.steps if s.kind == "mount" and s.target == directory.target
        ]
        for step in reversed(probe_mounts):
            teardown.undo(step)
        teardown.undo(directory)
