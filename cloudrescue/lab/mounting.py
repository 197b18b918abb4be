"""Mount helpers for init processes (run inside an instance's private mount namespace).

``Devices`` knows an instance's block devices (kernel names) and what ``blkid`` finds on them,
to resolve ``UUID=``/``LABEL=``/``PARTUUID=``/path specs like a booting system would.
``prepare_root`` gives a root tree its ``/proc``, a ``/sys`` whose block devices are filtered to
the instance's own, a private ``/dev`` with only their nodes, and a ``/run`` (with a udev
database, since this machine has no udev).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

from cloudrescue.lab.loopdev import device_numbers
from cloudrescue.lab.system import run

CHAR_DEVICES = {
    "null": (1, 3),
    "zero": (1, 5),
    "full": (1, 7),
    "random": (1, 8),
    "urandom": (1, 9),
    "tty": (5, 0),
}
LOOP_CONTROL = (10, 237)
DISK_GID = 6
_BY_KEYS = (
    ("by-uuid", "ID_FS_UUID_ENC"),
    ("by-label", "ID_FS_LABEL_ENC"),
    ("by-partuuid", "ID_PART_ENTRY_UUID"),
    ("by-partlabel", "ID_PART_ENTRY_NAME"),
)


def mount(source: str, target: Path, fstype: str | None = None, options: str = "") -> None:
    """``mount [-t fstype] [-o options] source target`` (raises ``LabError``)."""
    argv = ["mount"]
    if fstype:
        argv += ["-t", fstype]
    if options:
        argv += ["-o", options]
    run([*argv, source, str(target)])


def probe(name: str) -> dict[str, str]:
    """``blkid -p -o udev`` of ``/dev/<name>`` (empty when nothing is recognised)."""
    result = run(["blkid", "-p", "-o", "udev", f"/dev/{name}"], check=False)
    pairs = (line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    return {key: value for key, value in pairs}


class Devices:
    """The block devices an instance has, and the identities found on them."""

    def __init__(self, names: Iterable[str], aliases: dict[str, str]) -> None:
        self.names = list(dict.fromkeys(names))
        self.aliases = aliases
        self.ids = {name: probe(name) for name in self.names}

    def resolve(self, spec: str) -> str | None:
        """Kernel name of the device ``spec`` (fstab's first field) means, or None."""
        key, _, value = spec.partition("=")
        fields = {
            "UUID": "ID_FS_UUID",
            "LABEL": "ID_FS_LABEL",
            "PARTUUID": "ID_PART_ENTRY_UUID",
            "PARTLABEL": "ID_PART_ENTRY_NAME",
        }
        if value and key in fields:
            return self._find(fields[key], value)
        for directory, field in _BY_KEYS:
            prefix = f"/dev/disk/{directory}/"
            if spec.startswith(prefix):
                return self._find(field.removesuffix("_ENC"), spec.removeprefix(prefix))
        if spec in self.aliases:
            return self.aliases[spec]
        name = spec.removeprefix("/dev/")
        return name if spec.startswith("/dev/") and name in self.names else None

    def _find(self, field: str, value: str) -> str | None:
        for name, ids in self.ids.items():
            if ids.get(field, "").lower() == value.lower():
                return name
        return None

    def fstype(self, name: str) -> str:
        """Filesystem type ``blkid`` found on ``name`` ("" when none)."""
        return self.ids.get(name, {}).get("ID_FS_TYPE", "")


def _node(path: Path, kind: int, numbers: tuple[int, int], mode: int, gid: int = 0) -> None:
    os.mknod(path, mode | kind, os.makedev(*numbers))
    os.chmod(path, mode)
    os.chown(path, 0, gid)


def _filter_sys(root: Path, names: list[str]) -> None:
    mount("sysfs", root / "sys", "sysfs")
    for directory in ("block", "class/block"):
        mount("tmpfs", root / "sys" / directory, "tmpfs", "mode=0755,size=64k")
    for name in names:
        if (Path("/sys/block") / name).exists():
            os.symlink(os.readlink(f"/sys/block/{name}"), root / "sys/block" / name)
        os.symlink(os.readlink(f"/sys/class/block/{name}"), root / "sys/class/block" / name)
    for directory in ("block", "class/block"):
        mount("", root / "sys" / directory, options="remount,ro")


def _populate_dev(
    root: Path, devices: Devices, serials: dict[str, str], loop_control: bool
) -> None:
    dev = root / "dev"
    mount("tmpfs", dev, "tmpfs", "mode=0755,size=1m,nosuid")
    for name, numbers in CHAR_DEVICES.items():
        _node(dev / name, stat.S_IFCHR, numbers, 0o666)
    if loop_control:
        _node(dev / "loop-control", stat.S_IFCHR, LOOP_CONTROL, 0o660, DISK_GID)
    for name in devices.names:
        _node(dev / name, stat.S_IFBLK, device_numbers(name), 0o660, DISK_GID)
    for alias, name in devices.aliases.items():
        link = root / alias.lstrip("/")
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(dev / name, link.parent))
    for name, ids in devices.ids.items():
        links = [f"{directory}/{ids[field]}" for directory, field in _BY_KEYS if ids.get(field)]
        serial = serials.get(name)
        if serial:
            number = ids.get("ID_PART_ENTRY_NUMBER")
            links.append(f"by-id/virtio-{serial}" + (f"-part{number}" if number else ""))
        for relative in links:
            link = dev / "disk" / relative
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.exists():
                link.symlink_to(f"../../{name}")
    (dev / "pts").mkdir()
    mount("devpts", dev / "pts", "devpts", "newinstance,ptmxmode=0666,mode=0620,gid=5")
    (dev / "ptmx").symlink_to("pts/ptmx")
    (dev / "shm").mkdir(mode=0o1777)
    os.chmod(dev / "shm", 0o1777)  # noqa: S103 - /dev/shm is world-writable and sticky
    (dev / "fd").symlink_to("/proc/self/fd")
    for fd, stream in enumerate(("stdin", "stdout", "stderr")):
        (dev / stream).symlink_to(f"/proc/self/fd/{fd}")


def _udev_db(root: Path, devices: Devices, serials: dict[str, str]) -> None:
    data = root / "run/udev/data"
    data.mkdir(parents=True)
    for name, ids in devices.ids.items():
        major, minor = device_numbers(name)
        lines = ["I:1", *(f"E:{key}={value}" for key, value in ids.items())]
        serial = serials.get(name)
        if serial:
            lines += [f"E:ID_SERIAL={serial}", f"E:ID_SERIAL_SHORT={serial}"]
        (data / f"b{major}:{minor}").write_text("\n".join(lines) + "\n")


def prepare_root(
    root: Path,
    devices: Devices,
    *,
    visible: list[str],
    serials: dict[str, str] | None = None,
    loop_control: bool = False,
) -> None:
    """Mount ``/proc``, filtered ``/sys``, a private ``/dev`` and ``/run`` into ``root``.

    ``visible`` are the kernel names ``/sys/block`` shows; ``serials`` maps kernel names (a
    disk and its partitions) to the disk's serial (volume-backed instances).
    """
    serials = serials or {}
    mount("proc", root / "proc", "proc", "nosuid,nodev,noexec")
    _filter_sys(root, visible)
    _populate_dev(root, devices, serials, loop_control)
    mount("tmpfs", root / "run", "tmpfs", "mode=0755,size=16m,nosuid,nodev")
    (root / "run/sshd").mkdir(mode=0o755)
    (root / "run/lock").mkdir(mode=0o1777)
    _udev_db(root, devices, serials)
