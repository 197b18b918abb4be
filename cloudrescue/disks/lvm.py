"""Making the instance's LVM logical volumes usable on the rescue system.

With device-mapper, volume groups are activated (``vgchange -ay``), after a temporary rename
when the rescue system has a volume group of the same name; the name is restored on teardown
because the guest's boot configuration refers to it. Without device-mapper (the lab's kernel,
some minimal rescue kernels), each *linear* LV is mapped through a loop device at its offset
on the physical volume, computed from the LVM metadata: nothing is activated, so nothing
clashes. Every LVM command only scans the devices it is given (``--config`` filter).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from cloudrescue.disks.commands import COMMAND_NOT_FOUND, LVM_ENV, last_line, run_tool
from cloudrescue.disks.errors import MountFailedError
from cloudrescue.disks.teardown import Teardown, UndoStep, env_pairs
from cloudrescue.remote.base import CommandResult, Host

Mapping = Literal["device-mapper", "loop"]
RENAME_SUFFIX = "-cloudrescue"
LOOP_ATTACH_ATTEMPTS = 3
PV_FIELDS = "pv_name,vg_name,vg_uuid,pv_uuid,pe_start,vg_extent_size"
LV_FIELDS = "vg_name,lv_name,vg_uuid,lv_uuid,lv_size,lv_attr,segtype,seg_start_pe,seg_pe_ranges"
REPORT_ARGS = ("--reportformat", "json", "--units", "b", "--nosuffix", "-o")
"""``pvs``/``lvs`` options for what ``parse_pvs``/``parse_lvs`` read (the fields follow)."""


@dataclass(frozen=True)
class PhysicalVolume:
    """A PV of the instance and the geometry of its volume group."""

    name: str
    vg_name: str
    vg_uuid: str
    pe_start: int
    extent_size: int


@dataclass(frozen=True)
class Segment:
    """One segment of an LV: its type and the PV extent ranges it uses."""

    segtype: str
    start_extent: int
    ranges: tuple[tuple[str, int, int], ...]


@dataclass(frozen=True)
class LogicalVolume:
    """An LV as ``lvs`` reports it (segments in logical order)."""

    vg_name: str
    name: str
    vg_uuid: str
    uuid: str
    size: int
    attr: str
    segments: tuple[Segment, ...]

    @property
    def active(self) -> bool:
        return len(self.attr) > 4 and self.attr[4] == "a"

    def linear_extents(self) -> tuple[str, int, int] | None:
        """``(pv, first extent, extent count)`` when the LV is one contiguous run on one PV."""
        runs = [run for segment in self.segments for run in segment.ranges]
        if not runs or any(segment.segtype != "linear" for segment in self.segments):
            return None
        if any(len(segment.ranges) != 1 for segment in self.segments):
            return None
        pv, first, last = runs[0]
        for next_pv, next_first, next_last in runs[1:]:
            if next_pv != pv or next_first != last + 1:
                return None
            last = next_last
        return pv, first, last - first + 1


@dataclass(frozen=True)
class LvDevice:
    """An LV of the instance made usable: the host device to mount and how it was made."""

    vg_name: str
    lv_name: str
    vg_uuid: str
    lv_uuid: str
    size: int
    device: str
    mapping: Mapping
    pv_devices: tuple[str, ...]
    renamed_to: str | None = None


@dataclass
class LvmSetup:
    """What ``prepare_lvm`` made usable and what it could not (device, reason)."""

    device_mapper: bool
    devices: list[LvDevice] = field(default_factory=list)
    ignored: list[tuple[str, str]] = field(default_factory=list)


def _number(value: Any) -> int:
    return int(str(value).strip().rstrip("Bb") or 0)


def _report(text: str, kind: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for report in json.loads(text).get("report", []):
        rows.extend(report.get(kind, []))
    return rows


def parse_pvs(text: str) -> list[PhysicalVolume]:
    """PVs that belong to a VG, from ``pvs --reportformat json --units b``."""
    return [
        PhysicalVolume(
            name=row["pv_name"],
            vg_name=row["vg_name"],
            vg_uuid=row["vg_uuid"],
            pe_start=_number(row["pe_start"]),
            extent_size=_number(row["vg_extent_size"]),
        )
        for row in _report(text, "pv")
        if row.get("vg_name")
    ]


def _ranges(text: str) -> tuple[tuple[str, int, int], ...]:
    found = []
    for item in text.split():
        match = re.fullmatch(r"(.+):(\d+)-(\d+)", item)
        if match:
            found.append((match.group(1), int(match.group(2)), int(match.group(3))))
    return tuple(found)


def parse_lvs(text: str) -> list[LogicalVolume]:
    """LVs from ``lvs --reportformat json --units b`` with segment fields (a row a segment)."""
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in _report(text, "lv"):
        rows[row["lv_uuid"]].append(row)
    volumes = []
    for segment_rows in rows.values():
        segment_rows.sort(key=lambda row: _number(row.get("seg_start_pe", 0)))
        first = segment_rows[0]
        volumes.append(
            LogicalVolume(
                vg_name=first["vg_name"],
                name=first["lv_name"],
                vg_uuid=first["vg_uuid"],
                uuid=first["lv_uuid"],
                size=_number(first["lv_size"]),
                attr=first.get("lv_attr", ""),
                segments=tuple(
                    Segment(
                        segtype=row.get("segtype", ""),
                        start_extent=_number(row.get("seg_start_pe", 0)),
                        ranges=_ranges(row.get("seg_pe_ranges", "")),
                    )
                    for row in segment_rows
                ),
            )
        )
    return volumes


def loop_geometry(lv: LogicalVolume, pvs: Sequence[PhysicalVolume]) -> tuple[str, int, int]:
    """``(pv device, byte offset, byte size)`` of a linear LV; ``ValueError`` says why not."""
    extents = lv.linear_extents()
    if extents is None:
        types = ", ".join(sorted({segment.segtype for segment in lv.segments})) or "unknown"
        raise ValueError(
            f"LV {lv.vg_name}/{lv.name} is not one linear run of extents ({types}): "
            "only linear LVs can be used without device-mapper activation"
        )
    pv_name, first, _count = extents
    pv = next((pv for pv in pvs if pv.name == pv_name), None)
    if pv is None:
        raise ValueError(f"LV {lv.vg_name}/{lv.name} lies on a missing physical volume {pv_name}")
    return pv.name, pv.pe_start + first * pv.extent_size, lv.size


def dm_name(vg: str, lv: str) -> str:
    """The device-mapper name of an LV (dashes doubled)."""
    return f"{vg.replace('-', '--')}-{lv.replace('-', '--')}"


def lvm_config(devices: Sequence[str]) -> str:
    """``--config`` text restricting LVM to exactly ``devices`` (and ignoring devices files)."""
    accept = ", ".join(f'"a|^{re.escape(device)}$|"' for device in sorted(devices))
    rules = f'[ {accept}, "r|.*|" ]'
    return (
        f"devices {{ filter = {rules} global_filter = {rules} use_devicesfile = 0 "
        "obtain_device_list_from_udev = 0 }"
    )


def _lvm(
    host: Host, argv: list[str], devices: Sequence[str], *, check: bool = True
) -> CommandResult:
    return run_tool(host, [*argv, "--config", lvm_config(devices)], env=LVM_ENV, check=check)


def _attach_loop(host: Host, teardown: Teardown, backing: str, offset: int, size: int) -> str:
    failure = "no attempt"
    for _attempt in range(LOOP_ATTACH_ATTEMPTS):
        free = run_tool(host, ["losetup", "-f"]).stdout.strip()
        if host.lstat(free) is None:
            name = free.rsplit("/", 1)[-1]
            dev = run_tool(host, ["cat", f"/sys/block/{name}/dev"], check=False).stdout.strip()
            major, _, minor = dev.partition(":") if dev else ("7", ":", name.removeprefix("loop"))
            run_tool(host, ["mknod", free, "b", major, minor])
            teardown.add(UndoStep("node", free))
        result = run_tool(
            host,
            ["losetup", "--offset", str(offset), "--sizelimit", str(size), free, backing],
            check=False,
        )
        if result.ok:
            teardown.add(UndoStep("command", f"detached {free}", argv=("losetup", "-d", free)))
            return free
        failure = last_line(result)
    raise MountFailedError(f"cannot attach a loop device to {backing}: {failure}")


def _map_with_loops(
    host: Host,
    teardown: Teardown,
    lvs: Sequence[LogicalVolume],
    pvs: Sequence[PhysicalVolume],
    setup: LvmSetup,
) -> None:
    for lv in lvs:
        try:
            backing, offset, size = loop_geometry(lv, pvs)
        except ValueError as error:
            setup.ignored.append((f"{lv.vg_name}/{lv.name}", str(error)))
            continue
        device = _attach_loop(host, teardown, backing, offset, size)
        setup.devices.append(
            LvDevice(lv.vg_name, lv.name, lv.vg_uuid, lv.uuid, lv.size, device, "loop", (backing,))
        )


def _activate(
    host: Host,
    teardown: Teardown,
    vg_lvs: Sequence[LogicalVolume],
    pv_names: Sequence[str],
    rescue_vg_names: set[str],
    setup: LvmSetup,
) -> bool:
    """Activate one VG with device-mapper; False when it could not be (nothing left active)."""
    first = vg_lvs[0]
    name, renamed = first.vg_name, None
    env = env_pairs(LVM_ENV)
    config = ("--config", lvm_config(pv_names))
    if name in rescue_vg_names:
        renamed = name + RENAME_SUFFIX
        if renamed in rescue_vg_names:
            clash = f"the rescue system has volume groups {name} and {renamed}"
            setup.ignored.append((name, f"{clash}: refusing to rename the instance's"))
            return True
        result = _lvm(host, ["vgrename", first.vg_uuid, renamed], pv_names, check=False)
        if not result.ok:
            problem = f"the rescue system has a volume group {name} too, and renaming the "
            setup.ignored.append((name, f"{problem}instance's failed: {last_line(result)}"))
            return True
        teardown.add(
            UndoStep(
                "command",
                f"renamed volume group {renamed} back to {name}",
                argv=("vgrename", renamed, name, *config),
                env=env,
                failure_hint=(
                    f"The instance's volume group is still called {renamed}: run "
                    f"`vgrename {renamed} {name}` on the rescue system or it will not boot."
                ),
            )
        )
        name = renamed
    if not any(lv.active for lv in vg_lvs):
        result = _lvm(host, ["vgchange", "-ay", name], pv_names, check=False)
        if not result.ok:
            _lvm(host, ["vgchange", "-an", name], pv_names, check=False)
            return False
        teardown.add(
            UndoStep(
                "command",
                f"deactivated volume group {name}",
                argv=("vgchange", "-an", name, *config),
                env=env,
            )
        )
    for lv in vg_lvs:
        device = f"/dev/mapper/{dm_name(name, lv.name)}"
        if host.lstat(device) is None:
            _lvm(host, ["vgmknodes", name], pv_names, check=False)
        if host.lstat(device) is None:
            setup.ignored.append((f"{lv.vg_name}/{lv.name}", f"{device} did not appear"))
            continue
        setup.devices.append(
            LvDevice(
                lv.vg_name,
                lv.name,
                lv.vg_uuid,
                lv.uuid,
                lv.size,
                device,
                "device-mapper",
                tuple(pv_names),
                renamed,
            )
        )
    return True


def prepare_lvm(
    host: Host, teardown: Teardown, pv_devices: Sequence[str], rescue_pv_devices: Sequence[str]
) -> LvmSetup:
    """Make the LVs on ``pv_devices`` usable; everything done is recorded in ``teardown``."""
    version = run_tool(host, ["lvm", "version"], check=False, env=LVM_ENV)
    if version.exit_code == COMMAND_NOT_FOUND:
        setup = LvmSetup(device_mapper=False)
        setup.ignored.extend(
            (pv, "LVM physical volume, but the rescue system has no LVM tools (lvm2)")
            for pv in pv_devices
        )
        return setup
    setup = LvmSetup(device_mapper="Driver version" in version.stdout)
    pvs = parse_pvs(_lvm(host, ["pvs", *REPORT_ARGS, PV_FIELDS], pv_devices).stdout)
    lvs = parse_lvs(_lvm(host, ["lvs", *REPORT_ARGS, LV_FIELDS], pv_devices).stdout)
    by_vg: dict[str, list[LogicalVolume]] = defaultdict(list)
    for lv in lvs:
        by_vg[lv.vg_uuid].append(lv)
    rescue_vg_names: set[str] = set()
    if setup.device_mapper and rescue_pv_devices:
        rescue_vg_names = {
            pv.vg_name
            for pv in parse_pvs(
                _lvm(
                    host, ["pvs", *REPORT_ARGS, PV_FIELDS], rescue_pv_devices, check=False
                ).stdout
                or "{}"
            )
        }
    for vg_uuid, vg_lvs in by_vg.items():
        vg_pvs = [pv for pv in pvs if pv.vg_uuid == vg_uuid]
        if setup.device_mapper and _activate(
            host, teardown, vg_lvs, [pv.name for pv in vg_pvs], rescue_vg_names, setup
        ):
            continue
        _map_with_loops(host, teardown, vg_lvs, vg_pvs, setup)
    return setup
