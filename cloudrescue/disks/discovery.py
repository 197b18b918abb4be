"""Which block devices belong to the instance, and which of their filesystems could be its root.

The rescue system's own disks are recognised by use, not by name: a disk with anything
mounted (or used as swap) anywhere in its tree, including the disk under an overlay's lower
directory, is the rescue system's. Config drives (label ``config-2``) are set aside too. Device
nodes missing from a udev-less ``/dev`` are created (and recorded for removal), and filesystem
facts lsblk lacks are probed with ``blkid -p``.
"""

from __future__ import annotations

import dataclasses
import json
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass, field

from cloudrescue.disks.blockdev import (
    BlockDevice,
    list_block_devices,
    partition_number,
    probe_device,
    with_blkid,
)
from cloudrescue.disks.commands import run_tool
from cloudrescue.disks.lvm import LvDevice, dm_name, prepare_lvm
from cloudrescue.disks.mountinfo import MountInfo, mount_containing, read_mounts, read_swaps
from cloudrescue.disks.teardown import Teardown, UndoStep
from cloudrescue.remote.base import Host

LINUX_ROOT_FILESYSTEMS = frozenset({"ext2", "ext3", "ext4", "xfs", "btrfs"})
CONFIG_DRIVE_LABEL = "config-2"
LVM_MEMBER = "LVM2_member"
MAPPED_TYPES = frozenset({"lvm", "crypt", "dm", "mpath"})


def human_size(size: int) -> str:
    """``10.0 GiB``-style size."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Filesystem:
    """A filesystem (or swap, or other signature) on one of the instance's disks."""

    device: str
    fstype: str | None
    size: int
    disk: str
    disks: tuple[str, ...]
    uuid: str | None = None
    label: str | None = None
    partuuid: str | None = None
    partlabel: str | None = None
    serial: str | None = None
    partition: int | None = None
    read_only: bool = False
    lv: LvDevice | None = None

    def aliases(self) -> set[str]:
        """Names a user or the guest may use for this device."""
        names = {self.device, posixpath.basename(self.device)}
        if self.lv is not None:
            vg, lv = self.lv.vg_name, self.lv.lv_name
            names |= {f"{vg}/{lv}", f"/dev/{vg}/{lv}", f"/dev/mapper/{dm_name(vg, lv)}"}
        return names

    def matches(self, selector: str) -> bool:
        """Whether ``selector`` (device path or name, UUID, LABEL, disk) designates this."""
        key, sep, value = selector.partition("=")
        if sep and key.upper() in ("UUID", "LABEL", "PARTUUID", "PARTLABEL"):
            field_value = getattr(self, key.lower())
            return field_value is not None and _same(key.upper(), field_value, value)
        if selector in self.aliases() or selector in self.disks:
            return True
        if any(posixpath.basename(disk) == selector for disk in self.disks):
            return True
        return (self.uuid or "").lower() == selector.lower() or self.label == selector

    @property
    def name(self) -> str:
        """How to show it: the device, or ``vg/lv (device)`` for an LV."""
        if self.lv is None:
            return self.device
        return f"{self.lv.vg_name}/{self.lv.lv_name} ({self.device})"

    def describe(self) -> str:
        parts = [self.fstype or "no filesystem", human_size(self.size)]
        if self.label:
            parts.append(f"label {self.label}")
        return f"{self.name} ({', '.join(parts)})"


def _same(kind: str, actual: str, wanted: str) -> bool:
    wanted = wanted.strip('"')
    if kind in ("UUID", "PARTUUID"):
        return actual.lower() == wanted.lower()
    return actual == wanted


@dataclass(frozen=True)
class SeenDevice:
    """A device discovery looked at and set aside, with why."""

    device: str
    note: str


@dataclass(frozen=True)
class DiskInventory:
    """The rescue system's block devices sorted out."""

    devices: tuple[BlockDevice, ...]
    filesystems: tuple[Filesystem, ...]
    rescue_disks: tuple[str, ...]
    seen: tuple[SeenDevice, ...]
    device_mapper: bool | None = None

    @property
    def candidates(self) -> list[Filesystem]:
        """Filesystems of the instance that could hold a Linux root."""
        return [fs for fs in self.filesystems if fs.fstype in LINUX_ROOT_FILESYSTEMS]

    def on_disks(self, disks: Sequence[str]) -> list[Filesystem]:
        """Filesystems on any of ``disks`` (the instance's own disk, LVs on it included)."""
        return [fs for fs in self.filesystems if set(fs.disks) & set(disks)]

    def uuid_clash(self, fs: Filesystem) -> bool:
        """Whether another device may carry the same filesystem UUID as ``fs``.

        True as well when that cannot be told: ``fs``'s UUID or a mounted device's is unknown.
        """
        if not fs.uuid:
            return True
        wanted = fs.uuid.lower()
        for disk in self.devices:
            for node in disk.walk():
                if node.path == fs.device or not node.is_leaf:
                    continue
                if (node.uuid or "").lower() == wanted or (node.uuid is None and node.mountpoints):
                    return True
        return any(
            other.device != fs.device and (other.uuid or "").lower() == wanted
            for other in self.filesystems
        )

    def describe(self) -> str:
        """What was seen, one device a line (for error messages)."""
        lines = [f"  {item.device}: {item.note}" for item in self.seen]
        lines += [f"  {fs.describe()}" for fs in self.filesystems]
        return "\n".join(lines) if lines else "  no block devices"


@dataclass
class _Usage:
    majmins: set[str] = field(default_factory=set)
    paths: set[str] = field(default_factory=set)

    def add_mount(self, mount: MountInfo) -> None:
        if not mount.majmin.startswith("0:"):
            self.majmins.add(mount.majmin)
        if mount.source.startswith("/dev/"):
            self.paths.add(mount.source)


def rescue_usage(mounts: Sequence[MountInfo], swaps: Sequence[str]) -> _Usage:
    """Devices the rescue system uses: mounted, under an overlay, or swapped on."""
    usage = _Usage()
    mount_list = list(mounts)
    for mount in mount_list:
        usage.add_mount(mount)
        for directory in mount.overlay_dirs():
            holder = mount_containing([m for m in mount_list if m is not mount], directory)
            if holder is not None:
                usage.add_mount(holder)
    for swap in swaps:
        if swap.startswith("/dev/"):
            usage.paths.add(swap)
        else:
            holder = mount_containing(mount_list, swap)
            if holder is not None:
                usage.add_mount(holder)
    return usage


def path_under(path: str, root: str) -> bool:
    """Whether ``path`` is ``root`` or below it."""
    root = root.rstrip("/")
    return not root or path == root or path.startswith(root + "/")


def rescue_reason(disk: BlockDevice, usage: _Usage, *, guest_root: str | None = None) -> str | None:
    """Why ``disk`` is the rescue system's own (``None`` when nothing on it is in use).

    Mounts at or below ``guest_root`` (the instance's own filesystems, mounted for a fix) do
    not count.
    """
    for node in disk.walk():
        points = [
            p for p in node.mountpoints if guest_root is None or not path_under(p, guest_root)
        ]
        if points:
            return f"{node.path} is mounted on {', '.join(points)}"
        names = {node.path, f"/dev/{node.kname}", f"/dev/{node.name}"}
        if (node.majmin and node.majmin in usage.majmins) or names & usage.paths:
            return f"{node.path} is in use by the rescue system"
    return None


def loop_aliases(host: Host) -> dict[str, str]:
    """Loop devices backed by another block device (``/dev/loopN`` -> backing device)."""
    result = run_tool(host, ["losetup", "--list", "--json", "-O", "NAME,BACK-FILE"], check=False)
    if not result.ok or not result.stdout.strip():
        return {}
    aliases = {}
    for entry in json.loads(result.stdout).get("loopdevices", []):
        back = str(entry.get("back-file") or "").strip()
        if back.startswith("/dev/"):
            aliases[str(entry.get("name"))] = back
    return aliases


def device_numbers(host: Host, paths: Sequence[str]) -> dict[str, str]:
    """``maj:min`` of the ``/dev`` nodes among ``paths`` (``?`` when not a block device).

    Missing nodes are absent. Without udev, a node may also be stale: made for a device that
    has gone, its numbers now those of another device.
    """
    if not paths:
        return {}
    result = run_tool(host, ["stat", "-c", "%n|%F|%t|%T", "--", *paths], check=False)
    numbers = {}
    for line in result.stdout.splitlines():
        name, _, rest = line.partition("|")
        kind, _, hex_numbers = rest.rpartition("|")
        kind, _, major = kind.rpartition("|")
        try:
            value = f"{int(major, 16)}:{int(hex_numbers, 16)}"
        except ValueError:
            value = "?"
        numbers[name] = value if kind == "block special file" else "?"
    return numbers


def ensure_node(host: Host, teardown: Teardown, node: BlockDevice, current: str | None) -> None:
    """Make a missing (or stale) ``/dev`` node from the device's numbers, recorded for removal."""
    if not node.majmin or current == node.majmin or posixpath.dirname(node.path) != "/dev":
        return
    if current == "?":
        return  # not a device node: leave it alone, probing it will fail and say so
    if current is not None:
        host.unlink(node.path)
    major, _, minor = node.majmin.partition(":")
    run_tool(host, ["mknod", node.path, "b", major, minor])
    teardown.add(UndoStep("node", node.path))


def _in_scope(disk: BlockDevice, scope: Sequence[str] | None) -> bool:
    return scope is None or bool({disk.path, disk.name, disk.kname} & set(scope))


def _holds_data(node: BlockDevice) -> bool:
    """A leaf, or a device whose children are only mappings (LVs, crypt): it has a signature."""
    return node.size > 0 and all(child.type in MAPPED_TYPES for child in node.children)


def _complete(
    host: Host,
    teardown: Teardown,
    disk: BlockDevice,
    *,
    nodes: dict[str, str] | None,
    probe: bool,
) -> BlockDevice:
    """``disk`` with ``/dev`` nodes made right (given ``nodes``) and blkid facts filled in."""
    if nodes is not None:
        ensure_node(host, teardown, disk, nodes.get(disk.path))
    children = tuple(
        _complete(host, teardown, child, nodes=nodes, probe=probe) for child in disk.children
    )
    node = dataclasses.replace(disk, children=children)
    if probe and node.fstype is None and node.type not in MAPPED_TYPES and _holds_data(node):
        node = with_blkid(node, probe_device(host, node.path))
    return node


def _classify(
    disk: BlockDevice, filesystems: list[Filesystem], seen: list[SeenDevice], pvs: list[str]
) -> None:
    for node in disk.walk():
        if node.type in MAPPED_TYPES or not _holds_data(node):
            continue
        label = (node.label or "").lower()
        if label == CONFIG_DRIVE_LABEL:
            seen.append(SeenDevice(node.path, f"config drive ({node.fstype}, label {node.label})"))
        elif node.fstype is None:
            seen.append(SeenDevice(node.path, f"no filesystem found ({human_size(node.size)})"))
        elif node.fstype == LVM_MEMBER:
            pvs.append(node.path)
        elif node.fstype == "crypto_LUKS":
            seen.append(SeenDevice(node.path, "encrypted (LUKS): not supported"))
        elif all(fs.device != node.path for fs in filesystems):  # md arrays show twice
            filesystems.append(
                Filesystem(
                    device=node.path,
                    fstype=node.fstype,
                    size=node.size,
                    disk=disk.path,
                    disks=(disk.path,),
                    uuid=node.uuid,
                    label=node.label,
                    partuuid=node.partuuid,
                    partlabel=node.partlabel,
                    serial=disk.serial,
                    partition=partition_number(node, disk),
                    read_only=node.read_only,
                )
            )


def _lv_filesystem(host: Host, lv: LvDevice, disk_of: dict[str, BlockDevice]) -> Filesystem:
    facts = probe_device(host, lv.device)
    disks = tuple(dict.fromkeys(disk_of[pv].path for pv in lv.pv_devices if pv in disk_of))
    first = disk_of.get(lv.pv_devices[0]) if lv.pv_devices else None
    return Filesystem(
        device=lv.device,
        fstype=facts.get("TYPE"),
        size=lv.size,
        disk=first.path if first else lv.pv_devices[0],
        disks=disks or lv.pv_devices,
        uuid=facts.get("UUID"),
        label=facts.get("LABEL"),
        serial=first.serial if first else None,
        lv=lv,
    )


def discover(
    host: Host, teardown: Teardown, *, scope: Sequence[str] | None = None
) -> DiskInventory:
    """Sort out the host's block devices; LVs of the instance are made usable on the way.

    ``scope`` restricts the instance's disks to these whole disks (path or name); the rescue
    system's disks are recognised among all of them anyway.
    """
    usage = rescue_usage(read_mounts(host), read_swaps(host))
    aliases = loop_aliases(host)
    listing = list_block_devices(host)
    wanted = {
        disk.path
        for disk in listing
        if rescue_reason(disk, usage) is None
        and _in_scope(disk, scope)
        and disk.path not in aliases
    }
    nodes = device_numbers(host, [n.path for d in listing if d.path in wanted for n in d.walk()])
    devices: list[BlockDevice] = []
    filesystems: list[Filesystem] = []
    seen: list[SeenDevice] = []
    rescue: list[str] = []
    guest_pvs: list[str] = []
    rescue_pvs: list[str] = []
    disk_of: dict[str, BlockDevice] = {}
    for raw in listing:
        reason = rescue_reason(raw, usage)
        if reason is not None:
            disk = _complete(host, teardown, raw, nodes=None, probe=True)
            devices.append(disk)
            rescue.append(disk.path)
            seen.append(SeenDevice(disk.path, f"the rescue system's own disk ({reason})"))
            rescue_pvs += [n.path for n in disk.walk() if n.fstype == LVM_MEMBER]
            continue
        devices.append(raw)
        if raw.path in aliases:
            seen.append(SeenDevice(raw.path, f"a loop device over {aliases[raw.path]}"))
        if raw.path not in wanted:
            continue
        current = nodes.get(raw.path)
        if current is None or (raw.majmin and current != raw.majmin):
            why = "no /dev node" if current is None else f"its /dev node is device {current}"
            seen.append(SeenDevice(raw.path, f"{why}: not attached to this system"))
            continue
        disk = _complete(host, teardown, raw, nodes=nodes, probe=True)
        devices[-1] = disk
        for node in disk.walk():
            disk_of[node.path] = disk
        _classify(disk, filesystems, seen, guest_pvs)
    device_mapper = None
    if guest_pvs:
        setup = prepare_lvm(host, teardown, guest_pvs, rescue_pvs)
        device_mapper = setup.device_mapper
        seen += [SeenDevice(name, reason) for name, reason in setup.ignored]
        filesystems += [_lv_filesystem(host, lv, disk_of) for lv in setup.devices]
    return DiskInventory(
        devices=tuple(devices),
        filesystems=tuple(filesystems),
        rescue_disks=tuple(rescue),
        seen=tuple(seen),
        device_mapper=device_mapper,
    )
