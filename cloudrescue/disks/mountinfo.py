"""What is mounted and swapped on the rescue system (``/proc/self/mountinfo``, ``/proc/swaps``)."""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from cloudrescue.disks.commands import run_tool
from cloudrescue.remote.base import Host

_OCTAL = re.compile(r"\\([0-7]{3})")
_OVERLAY_DIR_KEYS = ("lowerdir", "lowerdir+", "datadir+", "upperdir", "workdir")


def unescape_octal(value: str) -> str:
    """Undo the kernel's ``\\040``-style escaping of mount fields."""
    return _OCTAL.sub(lambda match: chr(int(match.group(1), 8)), value)


@dataclass(frozen=True)
class MountInfo:
    """One line of ``/proc/self/mountinfo``."""

    mount_id: int
    parent_id: int
    majmin: str
    root: str
    mountpoint: str
    options: str
    fstype: str
    source: str
    super_options: str

    def overlay_dirs(self) -> list[str]:
        """Directories an overlay mount is made of (lower, upper and work dirs)."""
        if self.fstype != "overlay":
            return []
        found: list[str] = []
        for option in self.super_options.split(","):
            key, sep, value = option.partition("=")
            if not sep or key not in _OVERLAY_DIR_KEYS:
                continue
            parts = re.split(r"(?<!\\):", value) if key == "lowerdir" else [value]
            found.extend(unescape_octal(part.replace("\\:", ":")) for part in parts if part)
        return found


def parse_mountinfo(text: str) -> list[MountInfo]:
    """Mounts in the order the kernel lists them (malformed lines skipped)."""
    mounts: list[MountInfo] = []
    for line in text.splitlines():
        fields = line.split(" ")
        if "-" not in fields[6:]:
            continue
        dash = fields.index("-", 6)
        tail = fields[dash + 1 :]
        if len(tail) < 2:
            continue
        try:
            mount_id, parent_id = int(fields[0]), int(fields[1])
        except ValueError:
            continue
        mounts.append(
            MountInfo(
                mount_id=mount_id,
                parent_id=parent_id,
                majmin=fields[2],
                root=unescape_octal(fields[3]),
                mountpoint=unescape_octal(fields[4]),
                options=fields[5],
                fstype=tail[0],
                source=unescape_octal(tail[1]),
                super_options=tail[2] if len(tail) > 2 else "",
            )
        )
    return mounts


def mount_containing(mounts: list[MountInfo], path: str) -> MountInfo | None:
    """The mount a path lives on (the deepest mountpoint above it, latest mount wins)."""
    path = posixpath.normpath(path)
    best: MountInfo | None = None
    for mount in mounts:
        point = mount.mountpoint
        inside = path == point or point == "/" or path.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) >= len(best.mountpoint)):
            best = mount
    return best


def parse_swaps(text: str) -> list[str]:
    """Swap files and devices in use, from ``/proc/swaps``."""
    return [unescape_octal(line.split()[0]) for line in text.splitlines()[1:] if line.strip()]


def read_mounts(host: Host) -> list[MountInfo]:
    """Mounts of the host (as seen by the commands cloudrescue runs there)."""
    return parse_mountinfo(run_tool(host, ["cat", "/proc/self/mountinfo"]).stdout)


def read_swaps(host: Host) -> list[str]:
    """Active swap areas of the host (empty when ``/proc/swaps`` is unreadable)."""
    result = run_tool(host, ["cat", "/proc/swaps"], check=False)
    return parse_swaps(result.stdout) if result.ok else []
