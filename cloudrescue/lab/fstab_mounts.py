"""Mounting an instance's filesystems from its boot plan and its own ``/etc/fstab``.

Used by the guest's boot (strict: a failure means emergency mode) and by the break helper
(lenient). ``vfat`` entries are checked (the device exists and holds vfat) but not mounted: the
lab's kernel has no vfat driver. Swap entries are only checked: the host's swap is not touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cloudrescue.errors import LabError
from cloudrescue.lab.bootplan import BootPlan
from cloudrescue.lab.mounting import Devices, mount

PSEUDO = {"proc", "sysfs", "devpts", "tmpfs", "devtmpfs", "cgroup", "cgroup2", "securityfs"}
DROP_OPTIONS = ("nofail", "noauto", "auto", "x-", "comment=", "_netdev", "nobootwait")


@dataclass(frozen=True)
class FstabEntry:
    """One line of fstab."""

    spec: str
    target: str
    fstype: str
    options: tuple[str, ...]

    @property
    def nofail(self) -> bool:
        return "nofail" in self.options

    @property
    def noauto(self) -> bool:
        return "noauto" in self.options

    def mount_options(self) -> str:
        """Options for mount(8): without the ones about boot, and without ``defaults``."""
        kept = [o for o in self.options if not o.startswith(DROP_OPTIONS) and o != "defaults"]
        return ",".join(kept)


@dataclass(frozen=True)
class MountResult:
    """What happened to one fstab entry: mounted, checked, skipped, timeout or failed."""

    entry: FstabEntry
    status: str
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status in ("mounted", "checked", "skipped")


def read_fstab(root: Path) -> list[FstabEntry]:
    """The entries of ``root/etc/fstab`` (an absent fstab has none)."""
    try:
        text = (root / "etc/fstab").read_text(errors="replace")
    except FileNotFoundError:
        return []
    entries: list[FstabEntry] = []
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) >= 3:
            options = tuple(fields[3].split(",")) if len(fields) > 3 else ("defaults",)
            entries.append(FstabEntry(fields[0], fields[1], fields[2], options))
    return entries


def plan_devices(plan: BootPlan) -> Devices:
    """The guest's block devices: disk, partitions, config drive and LV mappings."""
    names = [plan.disk, *plan.partitions.values(), plan.config_drive, *plan.lv_devices.values()]
    return Devices(names, plan.guest_devices())


def root_device(plan: BootPlan) -> str:
    """Kernel name of the device holding the root filesystem (the boot loader's ``root=``)."""
    source = plan.layout.root
    if source.lv is not None:
        return plan.lv_devices[source.lv]
    if source.partition is None:
        raise LabError("the disk layout names no root device")
    return plan.partitions[source.partition]


def mount_root(plan: BootPlan, target: Path) -> None:
    """Mount the root filesystem on ``target`` (raises ``LabError``)."""
    source = plan.layout.root
    mount(f"/dev/{root_device(plan)}", target, source.fstype, source.options)


def _inside(root: Path, target: str) -> Path:
    """``root/target``, refusing ``..`` and symlinks (they could point out of the guest)."""
    parts = Path(target).parts[1:]
    if ".." in parts:
        raise LabError(f"{target} leaves the root filesystem")
    path = root
    for part in parts:
        path = path / part
        if path.is_symlink():
            raise LabError(f"{target}: {path.relative_to(root)} is a symlink")
    return path


def mount_entry(entry: FstabEntry, devices: Devices, root: Path) -> MountResult:
    """Mount (or check) one fstab entry below ``root``."""
    if entry.target == "/" or entry.noauto or entry.fstype in ("proc", "sysfs", "devpts"):
        return MountResult(entry, "skipped")
    if entry.fstype in PSEUDO:
        try:
            target = _inside(root, entry.target)
            target.mkdir(parents=True, exist_ok=True)
            mount(entry.spec, target, entry.fstype, entry.mount_options())
        except (LabError, OSError) as error:
            return MountResult(entry, "failed", str(error))
        return MountResult(entry, "mounted")
    name = devices.resolve(entry.spec)
    if name is None:
        return MountResult(entry, "timeout", f"device {entry.spec} not found")
    found = devices.fstype(name)
    if entry.fstype == "swap" or entry.fstype == "vfat":
        if found != entry.fstype:
            return MountResult(entry, "failed", f"/dev/{name} holds {found or 'nothing'}")
        return MountResult(entry, "checked")
    try:
        target = _inside(root, entry.target)
        target.mkdir(parents=True, exist_ok=True)
        mount(
            f"/dev/{name}",
            target,
            None if entry.fstype == "auto" else entry.fstype,
            entry.mount_options(),
        )
    except (LabError, OSError) as error:
        return MountResult(entry, "failed", getattr(error, "message", str(error)))
    return MountResult(entry, "mounted")


def mount_fstab(root: Path, devices: Devices) -> list[MountResult]:
    """Mount every fstab entry of ``root`` in order, reporting each."""
    return [mount_entry(entry, devices, root) for entry in read_fstab(root)]
