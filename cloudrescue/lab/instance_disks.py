"""An instance's disks: a sparse copy of its template, a config drive, their loop devices.

The disk and the config drive stay attached while the instance exists (the rescue system
needs them as much as the guest). LVM logical volumes are mapped at boot (loop devices at
their offset: the lab's kernel has no device-mapper) and unmapped at shutdown, like an
activation.
"""

from __future__ import annotations

import errno
import json
import os
import time
from dataclasses import dataclass

from cloudrescue.errors import LabError
from cloudrescue.lab.bootplan import DiskLayout
from cloudrescue.lab.layout import InstancePaths
from cloudrescue.lab.ledger import Ledger
from cloudrescue.lab.loopdev import LoopDevice, attach, detach, detach_strays
from cloudrescue.lab.model import InstanceSpec
from cloudrescue.lab.system import run

CONFIG_DRIVE_KIB = 4096
MTOOLS_ENV = {"MTOOLS_SKIP_CHECK": "1"}
RELEASE_TIMEOUT = 15.0


@dataclass(frozen=True)
class AttachedDisks:
    """The loop devices of an instance's disk and config drive."""

    disk: LoopDevice
    config_drive: LoopDevice

    def names(self) -> list[str]:
        """Kernel names of the disk, its partitions and the config drive."""
        parts = [os.path.basename(path) for path in self.disk.partitions.values()]
        return [self.disk.name, *parts, self.config_drive.name]


def copy_template(image: str, paths: InstancePaths) -> None:
    """The instance's disk: a sparse copy of the template image."""
    run(["cp", "--sparse=always", "--reflink=auto", image, str(paths.disk)])


def _meta_data(spec: InstanceSpec, public_keys: list[str]) -> dict[str, object]:
    return {
        "uuid": spec.id,
        "name": spec.name,
        "hostname": spec.name,
        "launch_index": 0,
        "availability_zone": "nova",
        "project_id": "lab",
        "public_keys": {f"lab-{n}": key for n, key in enumerate(public_keys)},
        "keys": [
            {"name": f"lab-{n}", "type": "ssh", "data": key} for n, key in enumerate(public_keys)
        ],
        "meta": {},
    }


def _network_data(spec: InstanceSpec) -> dict[str, object]:
    link = f"tap{spec.id[:11]}"
    return {
        "links": [{"id": link, "type": "ovs", "ethernet_mac_address": spec.mac, "mtu": 1500}],
        "networks": [{"id": "network0", "type": "ipv4_dhcp", "link": link, "network_id": "lab"}],
        "services": [],
    }


def make_config_drive(spec: InstanceSpec, paths: InstancePaths, public_keys: list[str]) -> None:
    """A vfat config drive labelled ``config-2`` with ``openstack/latest/*.json``."""
    image = str(paths.config_drive)
    paths.config_drive.unlink(missing_ok=True)
    run(["mkfs.vfat", "-C", "-n", "config-2", image, str(CONFIG_DRIVE_KIB)])
    run(["mmd", "-i", image, "::openstack", "::openstack/latest"], env=MTOOLS_ENV)
    files = {
        "meta_data.json": _meta_data(spec, public_keys),
        "network_data.json": _network_data(spec),
        "vendor_data.json": {},
    }
    for name, content in files.items():
        run(
            ["mcopy", "-i", image, "-", f"::openstack/latest/{name}"],
            stdin=json.dumps(content).encode(),
            env=MTOOLS_ENV,
        )


def attach_disks(ledger: Ledger, spec: InstanceSpec, paths: InstancePaths) -> AttachedDisks:
    """Attach the disk (with partitions) and the config drive to loop devices."""
    disk = attach(ledger, f"{spec.id}:disk", paths.disk, partitions=True)
    drive = attach(ledger, f"{spec.id}:config-drive", paths.config_drive)
    return AttachedDisks(disk, drive)


def map_lvs(
    ledger: Ledger, spec: InstanceSpec, paths: InstancePaths, layout: DiskLayout
) -> dict[str, str]:
    """Map the layout's LVs to loop devices at their offset; LV name -> kernel name."""
    mapped: dict[str, str] = {}
    for name, extent in layout.lvs.items():
        loop = attach(
            ledger, f"{spec.id}:lv:{name}", paths.disk, offset=extent.offset, size=extent.size
        )
        mapped[name] = loop.name
    return mapped


def unmap_lvs(ledger: Ledger, spec: InstanceSpec, mapped: dict[str, str]) -> None:
    """Detach the LV mappings ``map_lvs`` made."""
    for lv, name in mapped.items():
        detach(name)
        ledger.forget("loop", f"{spec.id}:lv:{lv}")


def unique_xfs_uuid(disks: AttachedDisks, layout: DiskLayout) -> None:
    """Give a copied XFS root its own UUID: the kernel refuses to mount two XFS filesystems
    with the same UUID, and every instance shares one kernel here (not so in a cloud)."""
    if layout.root.fstype == "xfs" and layout.root.partition is not None:
        run(["xfs_admin", "-U", "generate", disks.disk.partition(layout.root.partition)])


def release_strays(disks: AttachedDisks) -> None:
    """Detach loop devices someone (a rescue system) made on top of the instance's devices."""
    detach_strays(disks.names())


def _busy(name: str) -> bool:
    try:
        fd = os.open(f"/dev/{name}", os.O_RDONLY | os.O_EXCL)
    except OSError as error:
        if error.errno == errno.EBUSY:
            return True
        raise
    os.close(fd)
    return False


def wait_unused(names: list[str]) -> None:
    """Wait until none of the devices is mounted or held (exclusive open succeeds)."""
    deadline = time.monotonic() + RELEASE_TIMEOUT
    while True:
        busy = [name for name in names if _busy(name)]
        if not busy:
            return
        if time.monotonic() > deadline:
            raise LabError(f"still in use after the instance stopped: {', '.join(busy)}")
        time.sleep(0.05)
