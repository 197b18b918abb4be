"""Template disks, one per (variant, family): partitioned like a cloud image, cached.

Layout (GPT, like Debian/Ubuntu cloud images): partition 14 BIOS boot, 15 EFI (vfat, mounted
on ``/boot/efi`` by UUID), 1 root. Variants: ``ext4`` (root labelled ``cloudimg-rootfs``),
``xfs``, ``btrfs`` (root in subvolume ``@``, ``@home``, the top level stays the default) and
``lvm`` (1 = ``/boot`` ext4, 2 = PV of ``vg0`` with ``root`` and ``swap``). The kernel has no
device-mapper: LVs are reached through loop devices at their offset, computed from ``lvs``.

A build runs in a child process with a private mount namespace (XFS and btrfs are filled
through a mount); ``python -m cloudrescue.lab.templates <json>`` is that child.
"""

from __future__ import annotations

import json
import shutil
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

from cloudrescue.disks.lvm import (
    LV_FIELDS,
    PV_FIELDS,
    REPORT_ARGS,
    loop_geometry,
    parse_lvs,
    parse_pvs,
)
from cloudrescue.lab import rootfs
from cloudrescue.lab.bootplan import DiskLayout, LvExtent, RootSource
from cloudrescue.lab.layout import cache_dir
from cloudrescue.lab.ledger import Ledger
from cloudrescue.lab.loopdev import LoopDevice, attach, undo_loop, undo_node
from cloudrescue.lab.model import Family, Variant
from cloudrescue.lab.system import LVM_ENV, private_mount_module, run

TEMPLATE_VERSION = 2
DISK_SIZE = "3G"
ROOT_LABEL = "cloudimg-rootfs"
VG = "vg0"
MTOOLS_ENV = {"MTOOLS_SKIP_CHECK": "1"}
GRUB_STUB = (
    "search --fs-uuid --set=root {uuid}\nset prefix=($root)/boot/grub\n"
    "configfile $prefix/grub.cfg\n"
)
FSTAB_HEAD = (
    "# /etc/fstab: static file system information.\n"
    "# <file system> <mount point> <type> <options> <dump> <pass>\n"
)


@dataclass(frozen=True)
class Template:
    """A cached template disk image and its manifest."""

    image: Path
    layout: DiskLayout


def template(variant: Variant, family: Family, progress: rootfs.Progress) -> Template:
    """The template disk of ``variant``/``family``, built (once) if needed."""
    tree = rootfs.guest_rootfs(family, progress)
    key = rootfs.recipe_key({"tree": tree.key, "variant": variant, "v": TEMPLATE_VERSION})
    target = cache_dir() / "templates" / f"{variant}-{family}-{key}.img"

    def build(partial: Path) -> None:
        job = {"image": str(partial), "tree": str(tree.path), "variant": variant, "family": family}
        run(private_mount_module("cloudrescue.lab.templates", json.dumps(job)), timeout=900)

    image = rootfs.cached(target, build, progress, f"{variant} template disk ({family})")
    manifest = json.loads(image.with_name(image.name + ".json").read_text())
    return Template(image, DiskLayout.from_json(manifest))


def _partition(image: Path, variant: str, root_partuuid: str) -> None:
    layout = "-n 14:2048:+4M -t 14:EF02 -c 14:bios -n 15:0:+106M -t 15:EF00 -c 15:efi"
    if variant == "lvm":
        layout += " -n 1:0:+256M -t 1:8300 -c 1:boot -n 2:0:0 -t 2:8E00 -c 2:lvm"
    else:
        layout += " -n 1:0:0 -t 1:8300 -c 1:root"
    run(["sgdisk", "--clear", *layout.split(), "-u", f"1:{root_partuuid}", str(image)])


def _lvm_config(pv: str, lock_dir: Path) -> str:
    return (
        f'devices{{filter=["a|^{pv}$|","r|.*|"] use_devicesfile=0 '
        "obtain_device_list_from_udev=0} "
        f'global{{activation=0 locking_dir="{lock_dir}"}} backup{{backup=0 archive=0}} '
        "activation{udev_sync=0 udev_rules=0}"
    )


def _lvm(args: list[str], config: str) -> str:
    return run([args[0], "--config", config, *args[1:]], env=LVM_ENV).stdout


def _make_lvs(disk: LoopDevice, work: Path) -> dict[str, LvExtent]:
    pv = disk.partition(2)
    lock_dir = work / "lvm-lock"
    lock_dir.mkdir(exist_ok=True)
    config = _lvm_config(pv, lock_dir)
    _lvm(["pvcreate", pv], config)
    _lvm(["vgcreate", VG, pv], config)
    _lvm(["lvcreate", "-Zn", "-an", "-n", "root", "-L", "2G", VG], config)
    _lvm(["lvcreate", "-Zn", "-an", "-n", "swap", "-L", "256M", VG], config)
    pvs = parse_pvs(_lvm(["pvs", *REPORT_ARGS, PV_FIELDS, pv], config))
    part_start = int((Path("/sys/class/block") / Path(pv).name / "start").read_text()) * 512
    extents: dict[str, LvExtent] = {}
    for lv in parse_lvs(_lvm(["lvs", *REPORT_ARGS, LV_FIELDS, VG], config)):
        _pv, offset, size = loop_geometry(lv, pvs)
        extents[lv.name] = LvExtent(part_start + offset, size)
    return extents


def _fstab(variant: str, root_uuid: str, root_partuuid: str, efi_uuid: str, boot_uuid: str) -> str:
    efi = f"UUID={efi_uuid}\t/boot/efi\tvfat\tumask=0077\t0 1\n"
    if variant == "ext4":
        return f"{FSTAB_HEAD}LABEL={ROOT_LABEL}\t/\text4\tdiscard,errors=remount-ro\t0 1\n{efi}"
    if variant == "xfs":  # by PARTUUID: each instance gets its own XFS UUID (see disks)
        return f"{FSTAB_HEAD}PARTUUID={root_partuuid}\t/\txfs\tdefaults\t0 0\n{efi}"
    if variant == "btrfs":
        return (
            f"{FSTAB_HEAD}UUID={root_uuid}\t/\tbtrfs\tdefaults,subvol=@\t0 0\n"
            f"UUID={root_uuid}\t/home\tbtrfs\tdefaults,subvol=@home\t0 0\n{efi}"
        )
    return (
        f"{FSTAB_HEAD}/dev/mapper/{VG}-root\t/\text4\terrors=remount-ro\t0 1\n"
        f"UUID={boot_uuid}\t/boot\text4\tdefaults\t0 2\n{efi}"
        f"/dev/mapper/{VG}-swap\tnone\tswap\tsw\t0 0\n"
    )


def _fill_by_mount(device: str, fstype: str, staging: Path, mnt: Path) -> None:
    mnt.mkdir(exist_ok=True)
    run(["mount", "-t", fstype, device, str(mnt)])
    try:
        if fstype == "btrfs":
            run(["btrfs", "subvolume", "create", str(mnt / "@")])
            run(["btrfs", "subvolume", "create", str(mnt / "@home")])
            run(["cp", "-a", f"{staging}/.", str(mnt / "@")])
            run(["cp", "-a", f"{staging}/home/.", str(mnt / "@home")])
            for child in (mnt / "@" / "home").iterdir():
                shutil.rmtree(child)
        else:
            run(["cp", "-a", f"{staging}/.", str(mnt)])
    finally:
        run(["umount", str(mnt)])


def _efi(device: str, volume_id: str, root_uuid: str) -> None:
    run(["mkfs.vfat", "-F", "32", "-n", "UEFI", "-i", volume_id, device])
    for directory in ("::EFI", "::EFI/BOOT", "::EFI/debian"):
        run(["mmd", "-i", device, directory], env=MTOOLS_ENV)
    run(
        ["mcopy", "-i", device, "-", "::EFI/debian/grub.cfg"],
        stdin=GRUB_STUB.format(uuid=root_uuid).encode(),
        env=MTOOLS_ENV,
    )


def build(image: Path, tree: Path, variant: str, family: str) -> DiskLayout:
    """Make the template ``image`` (runs inside a private mount namespace)."""
    work = image.with_name(image.name + ".work")
    ledger = Ledger(image.with_name(image.name + ".ledger"))
    handlers = {"loop": undo_loop, "node": undo_node}
    ledger.undo_all(handlers)  # a build that crashed before
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    staging = work / "tree"
    root_uuid, root_partuuid, boot_uuid = (str(uuid.uuid4()) for _ in range(3))
    volume_id = uuid.uuid4().hex[:8].upper()
    efi_uuid = f"{volume_id[:4]}-{volume_id[4:]}"
    try:
        run(["truncate", "-s", DISK_SIZE, str(image)])
        _partition(image, variant, root_partuuid)
        run(["cp", "-a", str(tree), str(staging)])
        fstab = _fstab(variant, root_uuid, root_partuuid, efi_uuid, boot_uuid)
        (staging / "etc/fstab").write_text(fstab)
        disk = attach(ledger, "template", image, partitions=True)
        root_device = disk.partition(1)
        lvs: dict[str, LvExtent] = {}
        if variant == "lvm":
            run(
                [
                    "mkfs.ext4",
                    "-q",
                    "-F",
                    "-L",
                    "boot",
                    "-U",
                    boot_uuid,
                    "-d",
                    str(staging / "boot"),
                    disk.partition(1),
                ]
            )
            for child in (staging / "boot").iterdir():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
            lvs = _make_lvs(disk, work)
            root_lv = attach(
                ledger, "root-lv", image, offset=lvs["root"].offset, size=lvs["root"].size
            )
            swap_lv = attach(
                ledger, "swap-lv", image, offset=lvs["swap"].offset, size=lvs["swap"].size
            )
            run(["mkswap", "-U", str(uuid.uuid4()), swap_lv.path])
            root_device = root_lv.path
        if variant in ("ext4", "lvm"):
            run(
                [
                    "mkfs.ext4",
                    "-q",
                    "-F",
                    "-L",
                    ROOT_LABEL,
                    "-U",
                    root_uuid,
                    "-d",
                    str(staging),
                    root_device,
                ]
            )
        elif variant == "xfs":
            run(["mkfs.xfs", "-q", "-f", "-L", "rootfs", "-m", f"uuid={root_uuid}", root_device])
            _fill_by_mount(root_device, "xfs", staging, work / "mnt")
        else:
            run(["mkfs.btrfs", "-q", "-f", "-L", ROOT_LABEL, "-U", root_uuid, root_device])
            _fill_by_mount(root_device, "btrfs", staging, work / "mnt")
        _efi(disk.partition(15), volume_id, root_uuid)
    finally:
        ledger.undo_all(handlers)
        shutil.rmtree(work, ignore_errors=True)
        ledger.path.unlink(missing_ok=True)
    root = RootSource(
        fstype="ext4" if variant == "lvm" else variant,
        partition=None if variant == "lvm" else 1,
        lv="root" if variant == "lvm" else None,
        options="subvol=@" if variant == "btrfs" else "",
    )
    return DiskLayout(variant, family, root, VG if variant == "lvm" else None, lvs)


def main(argv: list[str]) -> None:
    """Child entry point: build the template described by the JSON argument."""
    job = json.loads(argv[0])
    image = Path(job["image"])
    layout = build(image, Path(job["tree"]), job["variant"], job["family"])
    manifest = image.with_name(image.name.removesuffix(".partial") + ".json")
    manifest.write_text(json.dumps(layout.to_json(), indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
