"""Keep a missing disk in ``/etc/fstab`` from sending the guest to emergency mode.

A line's device is missing when no disk attached to the rescue system carries it (``blkid``,
probed afresh, on every device but the rescue system's own, which may share UUIDs with the
instance's image) and the disk session could not find it on the instance's disk either. Such
lines get ``nofail,x-systemd.device-timeout=10s`` or are commented out with the
``# cloudrescue:`` marker; network filesystems get ``_netdev,nofail``. The ``/`` and ``/boot``
lines are never touched: ``check_fstab`` reports them when broken. SELinux guests relabel
at next boot (the new fstab has no context).
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from typing import Literal

from cloudrescue.disks.blockdev import list_block_devices, parse_blkid_export
from cloudrescue.disks.commands import run_tool
from cloudrescue.disks.discovery import path_under, rescue_reason, rescue_usage
from cloudrescue.disks.fstab import (
    NETWORK_FILESYSTEMS,
    VIRTUAL_FILESYSTEMS,
    FstabEntry,
    parse_fstab,
)
from cloudrescue.disks.mountinfo import read_mounts, read_swaps
from cloudrescue.disks.session import MountedGuest
from cloudrescue.fixes.common import commented
from cloudrescue.guest import Guest
from cloudrescue.guestfs import Change
from cloudrescue.remote.base import Host

FstabMode = Literal["nofail", "comment"]
EntryStatus = Literal["ok", "missing", "network", "protected-missing", "not-checked"]
FSTAB = "/etc/fstab"
PROTECTED = ("/", "/boot")
NOFAIL_OPTIONS = ("nofail", "x-systemd.device-timeout=10s")
NETWORK_OPTIONS = ("_netdev", "nofail")
TAGS = ("UUID", "LABEL", "PARTUUID", "PARTLABEL")
BY_DIRS = {
    "/dev/disk/by-uuid/": "UUID",
    "/dev/disk/by-label/": "LABEL",
    "/dev/disk/by-partuuid/": "PARTUUID",
    "/dev/disk/by-partlabel/": "PARTLABEL",
}
_UDEV_ESCAPE = re.compile(r"\\x([0-9a-fA-F]{2})")


@dataclass(frozen=True)
class FstabFinding:
    """What was found about one fstab line."""

    entry: FstabEntry
    status: EntryStatus
    detail: str


def _tag(spec: str) -> tuple[str, str] | None:
    """``(TAG, value)`` of a tag spec (``UUID=``... or ``/dev/disk/by-*/``), else ``None``."""
    key, sep, value = spec.partition("=")
    if sep and key in TAGS:
        return key, value.strip('"')
    for prefix, tag in BY_DIRS.items():
        if spec.startswith(prefix):
            raw = spec[len(prefix) :]
            return tag, _UDEV_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), raw)
    return None


def _normal(tag: str, value: str) -> tuple[str, str]:
    return (tag, value.lower()) if tag in ("UUID", "PARTUUID") else (tag, value)


def attached_tags(host: Host, mount: MountedGuest) -> set[tuple[str, str]]:
    """``(TAG, value)`` of every device on the rescue system but the rescue's own disks."""
    mounts = [m for m in read_mounts(host) if not path_under(m.mountpoint, mount.root)]
    usage = rescue_usage(mounts, read_swaps(host))
    own: set[str] = set()
    for disk in list_block_devices(host):
        if rescue_reason(disk, usage, guest_root=mount.root) is not None:
            own |= {node.path for node in disk.walk()}
    result = run_tool(host, ["blkid", "-c", "/dev/null", "-o", "export"], check=False)
    tags: set[tuple[str, str]] = set()
    for block in re.split(r"\n\s*\n", result.stdout):
        values = parse_blkid_export(block)
        if not values or values.get("DEVNAME") in own:
            continue
        tags |= {_normal(tag, values[tag]) for tag in TAGS if values.get(tag)}
    return tags


def _is_network(entry: FstabEntry) -> bool:
    return entry.fstype in NETWORK_FILESYSTEMS or bool(re.match(r"^(//|[^/=]+:)", entry.spec))


def _classify(entry: FstabEntry, mount: MountedGuest, tags: set[tuple[str, str]]) -> FstabFinding:
    if _is_network(entry):
        return FstabFinding(entry, "network", f"network filesystem ({entry.fstype})")
    if (
        entry.fstype in VIRTUAL_FILESYSTEMS
        or entry.has_option("noauto")
        or entry.has_option("bind")
        or entry.fstype == "none"
    ):
        return FstabFinding(entry, "not-checked", "not a disk at boot")
    if any(r.guest_path == entry.mountpoint and r.kind == "fstab" for r in mount.mounts):
        return FstabFinding(entry, "ok", "mounted from the instance's disk")
    tag = _tag(entry.spec)
    if tag is not None:
        present = _normal(*tag) in tags
    else:
        present = entry.spec not in {skip.spec for skip in mount.missing_devices}
    if present:
        return FstabFinding(entry, "ok", f"{entry.spec} is attached")
    if posixpath.normpath(entry.mountpoint) in PROTECTED:
        return FstabFinding(entry, "protected-missing", f"{entry.spec} is not attached")
    return FstabFinding(entry, "missing", f"{entry.spec} is not attached")


def check_fstab(guest: Guest) -> list[FstabFinding]:
    """Every fstab line judged: attached, missing, network, or a broken ``/``/``/boot``."""
    entries = parse_fstab(guest.files.read_text(FSTAB) or "")
    tags = attached_tags(guest.host, guest.mount)
    return [_classify(entry, guest.mount, tags) for entry in entries]


def with_options(line: str, extra: tuple[str, ...]) -> str:
    """``line`` with ``extra`` options added to its fourth field (spacing kept)."""
    body = line.rstrip("\n")
    newline = line[len(body) :]
    parts = re.split(r"(\s+)", body.strip())
    lead = body[: len(body) - len(body.lstrip())]
    fields = parts[0::2]
    if len(fields) < 3:
        return line
    if len(fields) == 3:
        return f"{body}\t{','.join(extra)}{newline}"
    current = [o for o in fields[3].split(",") if o]
    added = [option for option in extra if option not in current]
    if not added:
        return line
    parts[6] = ",".join([*current, *added])
    return lead + "".join(parts) + newline


def repair_fstab(guest: Guest, *, mode: FstabMode = "nofail") -> list[Change]:
    """Make missing devices not block the boot (``nofail`` or commented out), network
    filesystems ``_netdev,nofail``; ``/`` and ``/boot`` left alone. Idempotent."""
    files = guest.files
    text = files.read_text(FSTAB)
    if text is None:
        return []
    lines = text.splitlines(keepends=True)
    for finding in check_fstab(guest):
        index = finding.entry.line - 1
        if finding.status == "network":
            lines[index] = with_options(lines[index], NETWORK_OPTIONS)
        elif finding.status == "missing" and not finding.entry.has_option("nofail"):
            if mode == "comment":
                lines[index] = commented(lines[index], f"device not found ({finding.detail})")
            else:
                lines[index] = with_options(lines[index], NOFAIL_OPTIONS)
    changes = files.write_file(FSTAB, "".join(lines).encode())
    return changes + files.request_selinux_relabel() if changes else []
