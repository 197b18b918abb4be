"""What an init process (guest or rescue) is told: the disk layout and the boot parameters.

The runtime writes a ``BootPlan`` to ``instances/<id>/plan.json``; ``guest_init`` and
``rescue_init`` read it inside the instance's namespaces. ``DiskLayout`` is what a template
disk's manifest says (the lab's stand-in for the boot loader's ``root=``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

PlanKind = Literal["guest", "rescue"]


@dataclass(frozen=True)
class RootSource:
    """Where the root filesystem is: a partition of the disk or a linear LV."""

    fstype: str
    partition: int | None = None
    lv: str | None = None
    options: str = ""


@dataclass(frozen=True)
class LvExtent:
    """Byte range of a linear LV inside the disk image."""

    offset: int
    size: int


@dataclass(frozen=True)
class DiskLayout:
    """Manifest of a template disk (the same for every copy of it)."""

    variant: str
    family: str
    root: RootSource
    vg: str | None = None
    lvs: dict[str, LvExtent] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DiskLayout:
        return cls(
            variant=data["variant"],
            family=data["family"],
            root=RootSource(**data["root"]),
            vg=data.get("vg"),
            lvs={name: LvExtent(**extent) for name, extent in data.get("lvs", {}).items()},
        )


@dataclass(frozen=True)
class BootPlan:
    """Everything an init process needs; device fields are kernel names (``loop5p1``)."""

    kind: PlanKind
    instance_id: str
    hostname: str
    address: str  # the cloud's address with prefix, e.g. 10.213.4.10/24
    mac: str
    console: str
    mnt: str
    disk: str
    partitions: dict[int, str]
    config_drive: str
    layout: DiskLayout
    default_user: str
    public_keys: list[str] = field(default_factory=list)
    lv_devices: dict[str, str] = field(default_factory=dict)
    serial: str | None = None
    rescue_disk: str | None = None
    forge_host_keys: bool = False
    defer_host_keys: bool = False  # the rescue's host-key block: the runtime prints it later
    stable_device: bool = False
    gateway: str | None = None  # the cloud's router (the DHCP answer's default route)
    ssh_cut: bool = False  # a rescue whose port 22 answers every packet with a reset

    def save(self, path: Path) -> None:
        """Write the plan as JSON (no secrets are ever part of a plan)."""
        path.write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, path: Path) -> BootPlan:
        """Read a plan written by ``save``."""
        data = json.loads(path.read_text())
        data["partitions"] = {int(k): v for k, v in data["partitions"].items()}
        data["layout"] = DiskLayout.from_json(data["layout"])
        return cls(**data)

    def rescue_devices(self) -> dict[str, str]:
        """``/dev/vdX`` links of a rescue system: the rescue disk first (legacy rescue), or
        after the instance's disks (stable device rescue: they keep their names)."""
        instance = [self.disk, self.config_drive]
        rescue = [self.rescue_disk]
        disks = [*instance, *rescue] if self.stable_device else [*rescue, *instance]
        names: dict[str, str] = {}
        for letter, kernel in zip("abc", disks, strict=True):
            if kernel is None:
                continue
            names[f"/dev/vd{letter}"] = kernel
            if kernel == self.disk:
                for number, partition in self.partitions.items():
                    names[f"/dev/vd{letter}{number}"] = partition
        return names

    def guest_devices(self) -> dict[str, str]:
        """Device paths the guest's own configuration may name -> kernel names."""
        names = {"/dev/vda": self.disk, "/dev/vdb": self.config_drive}
        for number, kernel in self.partitions.items():
            names[f"/dev/vda{number}"] = kernel
        vg = self.layout.vg
        for lv, kernel in self.lv_devices.items():
            names[f"/dev/{vg}/{lv}"] = kernel
            names[f"/dev/mapper/{vg}-{lv}"] = kernel
        return names
