"""The guest's ``/etc/fstab``: parsing, which lines to mount, and which device each one means.

Devices are resolved against the instance's own filesystems only (never the rescue system's,
which may carry the very same UUIDs when both come from one image). Plain device names such as
``/dev/vda15`` are read as partitions of the instance's root disk, which is the guest's first
disk (``vda``, ``sda``, ``xvda``, ``nvme0n1``) unless the fstab's ``/`` line names another.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from cloudrescue.disks.discovery import Filesystem
from cloudrescue.disks.lvm import dm_name
from cloudrescue.disks.mountinfo import unescape_octal

SkipKind = Literal[
    "swap",
    "network",
    "noauto",
    "bind",
    "virtual",
    "bad-mountpoint",
    "missing-device",
    "not-mountable",
    "mount-failed",
]

NETWORK_FILESYSTEMS = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smbfs",
        "smb3",
        "sshfs",
        "fuse.sshfs",
        "glusterfs",
        "fuse.glusterfs",
        "ceph",
        "fuse.ceph",
        "9p",
        "davfs",
        "fuse.s3fs",
        "afs",
        "ncpfs",
        "lustre",
        "gfs2",
        "ocfs2",
        "iscsi",
    }
)
VIRTUAL_FILESYSTEMS = frozenset(
    {
        "tmpfs",
        "ramfs",
        "proc",
        "sysfs",
        "devpts",
        "devtmpfs",
        "cgroup",
        "cgroup2",
        "securityfs",
        "efivarfs",
        "debugfs",
        "tracefs",
        "hugetlbfs",
        "mqueue",
        "binfmt_misc",
        "configfs",
        "fusectl",
        "pstore",
        "bpf",
        "overlay",
        "squashfs",
        "autofs",
        "usbfs",
    }
)
NOT_MOUNTABLE = frozenset({"swap", "LVM2_member", "crypto_LUKS", "linux_raid_member"})
DROPPED_OPTIONS = frozenset(
    {
        "defaults",
        "auto",
        "nofail",
        "user",
        "users",
        "nouser",
        "owner",
        "group",
        "_netdev",
        "loop",
        "rw",
        "ro",
        "sw",
        "bootwait",
        "nobootwait",
    }
)
DROPPED_PREFIXES = (
    "x-",
    "X-",
    "comment=",
    "offset=",
    "sizelimit=",
    "encryption=",
    "context=",
    "fscontext=",
    "defcontext=",
    "rootcontext=",
    "helper=",
)
FIRST_DISKS = ("vda", "sda", "xvda", "hda", "nvme0n1")
_DEVICE_NAME = re.compile(
    r"/dev/(?P<disk>(?:[svh]d|xvd)[a-z]+|nvme\d+n\d+|mmcblk\d+)(?:p?(?P<part>\d+))?"
)
_UDEV_ESCAPE = re.compile(r"\\x([0-9a-fA-F]{2})")
_TAGS = {
    "UUID": "uuid",
    "LABEL": "label",
    "PARTUUID": "partuuid",
    "PARTLABEL": "partlabel",
}
_BY_DIRS = {
    "/dev/disk/by-uuid/": "uuid",
    "/dev/disk/by-label/": "label",
    "/dev/disk/by-partuuid/": "partuuid",
    "/dev/disk/by-partlabel/": "partlabel",
}


@dataclass(frozen=True)
class FstabEntry:
    """One line of the guest's fstab."""

    spec: str
    mountpoint: str
    fstype: str
    options: tuple[str, ...]
    line: int

    def has_option(self, name: str) -> bool:
        return name in self.options


def parse_fstab(text: str) -> list[FstabEntry]:
    """Entries of an fstab (comments, blank and malformed lines skipped)."""
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split("#", 1)[0].split() if not line.lstrip().startswith("#") else []
        if len(fields) < 2:
            continue
        fstype = fields[2] if len(fields) > 2 else "auto"
        options = tuple(fields[3].split(",")) if len(fields) > 3 else ("defaults",)
        entries.append(
            FstabEntry(
                spec=unescape_octal(fields[0]),
                mountpoint=unescape_octal(fields[1]),
                fstype=fstype,
                options=options,
                line=number,
            )
        )
    return entries


def path_order(entries: Sequence[FstabEntry]) -> list[FstabEntry]:
    """Entries so that every mountpoint comes after the ones above it (stable otherwise)."""
    return sorted(entries, key=lambda entry: [p for p in entry.mountpoint.split("/") if p])


def skip_reason(entry: FstabEntry) -> tuple[SkipKind, str] | None:
    """Why a line is not to be mounted by cloudrescue (``None`` when it is)."""
    if entry.fstype == "swap" or entry.mountpoint in ("none", "swap"):
        return "swap", "swap"
    if entry.fstype in NETWORK_FILESYSTEMS or re.match(r"^(//|[^/=]+:)", entry.spec):
        return "network", f"network filesystem ({entry.fstype})"
    if entry.has_option("noauto"):
        return "noauto", "noauto"
    if entry.has_option("bind") or entry.has_option("rbind") or entry.fstype == "none":
        return "bind", "bind mount"
    if entry.fstype in VIRTUAL_FILESYSTEMS or entry.fstype.startswith("fuse"):
        return "virtual", f"{entry.fstype} is not on a disk"
    point = entry.mountpoint
    clean = point.rstrip("/") or "/"
    if not point.startswith("/") or posixpath.normpath(clean) != clean or "//" in point:
        return "bad-mountpoint", f"mountpoint {point!r} is not a plain absolute path"
    return None


def _unescape_udev(value: str) -> str:
    return _UDEV_ESCAPE.sub(lambda match: chr(int(match.group(1), 16)), value)


def _by_field(filesystems: Sequence[Filesystem], name: str, value: str) -> Filesystem | None:
    value = value.strip('"')
    for fs in filesystems:
        actual = getattr(fs, name)
        if actual is None:
            continue
        if name in ("uuid", "partuuid") and actual.lower() == value.lower():
            return fs
        if actual == value:
            return fs
    return None


def _by_lvm_name(filesystems: Sequence[Filesystem], spec: str) -> Filesystem | None:
    for fs in filesystems:
        lv = fs.lv
        if lv is None:
            continue
        compact = f"{lv.vg_uuid}{lv.lv_uuid}".replace("-", "")
        names = {
            f"/dev/mapper/{dm_name(lv.vg_name, lv.lv_name)}",
            f"/dev/{lv.vg_name}/{lv.lv_name}",
            f"/dev/disk/by-id/dm-name-{dm_name(lv.vg_name, lv.lv_name)}",
            f"/dev/disk/by-id/dm-uuid-LVM-{compact}",
        }
        if spec in names:
            return fs
    return None


def guest_disk_names(entries: Sequence[FstabEntry]) -> tuple[str, ...]:
    """What the guest calls its root disk: from a ``/dev/<disk>N`` ``/`` line, else the usual."""
    for entry in entries:
        match = _DEVICE_NAME.fullmatch(entry.spec)
        if entry.mountpoint == "/" and match:
            return (match.group("disk"),)
    return FIRST_DISKS


def resolve_spec(
    spec: str, filesystems: Sequence[Filesystem], root_disk: str, disk_names: Sequence[str]
) -> Filesystem | None:
    """The instance filesystem an fstab ``spec`` designates (``None`` when it is absent).

    ``filesystems`` are the instance's own; ``root_disk`` is the rescue's path of the disk
    holding the guest root; ``disk_names`` what the guest calls that disk.
    """
    tag, sep, value = spec.partition("=")
    if sep and tag in _TAGS:
        return _by_field(filesystems, _TAGS[tag], value)
    for prefix, name in _BY_DIRS.items():
        if spec.startswith(prefix):
            return _by_field(filesystems, name, _unescape_udev(spec[len(prefix) :]))
    found = _by_lvm_name(filesystems, spec)
    if found is not None:
        return found
    match = _DEVICE_NAME.fullmatch(spec)
    if match and match.group("disk") in disk_names:
        number = int(match.group("part")) if match.group("part") else None
        for fs in filesystems:
            if fs.lv is None and fs.disk == root_disk and fs.partition == number:
                return fs
    return None


def safe_options(entry: FstabEntry) -> list[str]:
    """The line's mount options minus those about boot, users, loops and SELinux contexts."""
    return [
        option
        for option in entry.options
        if option and option not in DROPPED_OPTIONS and not option.startswith(DROPPED_PREFIXES)
    ]
