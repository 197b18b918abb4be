"""Block devices as ``lsblk -J`` reports them, completed by ``blkid -p`` where udev is silent."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from cloudrescue.disks.commands import run_tool
from cloudrescue.disks.errors import MountFailedError
from cloudrescue.remote.base import Host

LSBLK_COLUMNS = (
    "NAME,KNAME,PATH,PKNAME,TYPE,SIZE,FSTYPE,LABEL,UUID,PARTUUID,PARTLABEL,SERIAL,"
    "MOUNTPOINTS,RO,MAJ:MIN"
)
# util-linux before 2.37 has no MOUNTPOINTS, before 2.33 no PATH.
LSBLK_OLD_COLUMNS = (
    "NAME,KNAME,PKNAME,TYPE,SIZE,FSTYPE,LABEL,UUID,PARTUUID,PARTLABEL,SERIAL,MOUNTPOINT,RO,MAJ:MIN"
)
MAPPER_TYPES = frozenset({"lvm", "crypt", "dm", "mpath"})


@dataclass(frozen=True)
class BlockDevice:
    """One node of the ``lsblk`` tree (a disk, partition, loop device, LV...)."""

    name: str
    kname: str
    path: str
    type: str
    size: int
    fstype: str | None = None
    label: str | None = None
    uuid: str | None = None
    partuuid: str | None = None
    partlabel: str | None = None
    serial: str | None = None
    mountpoints: tuple[str, ...] = ()
    read_only: bool = False
    majmin: str | None = None
    pkname: str | None = None
    children: tuple[BlockDevice, ...] = ()

    def walk(self) -> Iterator[BlockDevice]:
        """This device and every device below it, depth first."""
        yield self
        for child in self.children:
            yield from child.walk()

    @property
    def is_leaf(self) -> bool:
        return not self.children


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip() in ("1", "true")


def _size(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _device_path(entry: dict[str, Any], name: str, kind: str) -> str:
    path = _text(entry.get("path"))
    if path:
        return path
    return f"/dev/mapper/{name}" if kind in MAPPER_TYPES else f"/dev/{name}"


def _parse_node(entry: dict[str, Any]) -> BlockDevice:
    name = str(entry.get("name", ""))
    kind = _text(entry.get("type")) or "unknown"
    if "mountpoints" in entry:
        raw_mounts = entry.get("mountpoints") or []
    else:
        raw_mounts = [entry.get("mountpoint")]
    mountpoints = tuple(m for m in (_text(item) for item in raw_mounts) if m)
    return BlockDevice(
        name=name,
        kname=_text(entry.get("kname")) or name,
        path=_device_path(entry, name, kind),
        type=kind,
        size=_size(entry.get("size")),
        fstype=_text(entry.get("fstype")),
        label=_text(entry.get("label")),
        uuid=_text(entry.get("uuid")),
        partuuid=_text(entry.get("partuuid")),
        partlabel=_text(entry.get("partlabel")),
        serial=_text(entry.get("serial")),
        mountpoints=mountpoints,
        read_only=_flag(entry.get("ro", False)),
        majmin=_text(entry.get("maj:min")),
        pkname=_text(entry.get("pkname")),
        children=tuple(_parse_node(child) for child in entry.get("children") or []),
    )


def parse_lsblk(text: str) -> list[BlockDevice]:
    """The device forest of ``lsblk -J`` output (new ``mountpoints`` or old ``mountpoint``)."""
    data = json.loads(text)
    return [_parse_node(entry) for entry in data.get("blockdevices", [])]


_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|.)")


def _unescape_export(value: str) -> str:
    def replace(match: re.Match[str]) -> str:
        code = match.group(1)
        return chr(int(code[1:], 16)) if len(code) == 3 and code[0] == "x" else code

    return _ESCAPE.sub(replace, value)


def parse_blkid_export(text: str) -> dict[str, str]:
    """``KEY=value`` lines of ``blkid -p -o export`` (backslash escapes undone)."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip():
            values[key.strip()] = _unescape_export(value)
    return values


def with_blkid(device: BlockDevice, probed: dict[str, str]) -> BlockDevice:
    """``device`` with the fields lsblk left empty filled from a ``blkid -p`` probe."""
    return dataclasses.replace(
        device,
        fstype=device.fstype or probed.get("TYPE"),
        label=device.label or probed.get("LABEL"),
        uuid=device.uuid or probed.get("UUID"),
        partuuid=device.partuuid or probed.get("PART_ENTRY_UUID"),
        partlabel=device.partlabel or probed.get("PART_ENTRY_NAME"),
    )


def partition_number(device: BlockDevice, disk: BlockDevice) -> int | None:
    """Partition number from the kernel name (``vdb15`` -> 15, ``loop5p1`` -> 1)."""
    if device is disk or not device.kname.startswith(disk.kname):
        return None
    match = re.fullmatch(r"p?(\d+)", device.kname[len(disk.kname) :])
    return int(match.group(1)) if match else None


def list_block_devices(host: Host) -> list[BlockDevice]:
    """Run ``lsblk -J -b`` (falling back to the columns older util-linux knows)."""
    result = run_tool(host, ["lsblk", "-J", "-b", "-o", LSBLK_COLUMNS], check=False)
    if not result.ok:
        result = run_tool(host, ["lsblk", "-J", "-b", "-o", LSBLK_OLD_COLUMNS], check=False)
    if not result.ok:
        raise MountFailedError(
            f"cannot list block devices on {host.description}: "
            f"{(result.stderr or result.stdout).strip() or 'lsblk failed'}"
        )
    return parse_lsblk(result.stdout)


def probe_device(host: Host, path: str) -> dict[str, str]:
    """``blkid -p -o export`` of one device (empty when blkid finds nothing or is missing)."""
    result = run_tool(host, ["blkid", "-p", "-o", "export", path], check=False)
    return parse_blkid_export(result.stdout) if result.ok else {}
