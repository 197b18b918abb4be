"""Real disks for the disk tests: small sparse images on loop devices, like the lab's rescue.

``disk_lab`` (session scoped, needs root) builds every image once: a Debian-like GPT disk
(ext4 root, ext4 home, vfat EFI), an XFS disk (plus a mounted clone with the same UUID, as when
the rescue image is the instance's image), an LVM disk (ext4 /boot, VG with root and swap
LVs), a btrfs disk (``@`` and ``@home``), a ``config-2`` drive and a mounted "rescue root".
Teardown unmounts and detaches everything it or the code under test left, even on failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cloudrescue.disks.lvm import loop_geometry, parse_lvs, parse_pvs

LVM_ENV = {**os.environ, "LVM_SUPPRESS_FD_WARNINGS": "1"}
VG_NAME = "crtestvg"
TOOLS = ("losetup", "partx", "sgdisk", "mkfs.ext4", "mkfs.xfs", "mkfs.btrfs", "mkfs.vfat", "lvm")

DEBIAN_OS_RELEASE = (
    'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nID=debian\n'
)
ROCKY_OS_RELEASE = (
    'NAME="Rocky Linux"\nVERSION="9.3 (Blue Onyx)"\nID="rocky"\n'
    'PRETTY_NAME="Rocky Linux 9.3 (Blue Onyx)"\n'
)
UBUNTU_OS_RELEASE = 'PRETTY_NAME="Ubuntu 24.04 LTS"\nID=ubuntu\n'
LVM_OS_RELEASE = 'PRETTY_NAME="AlmaLinux 9.4 (Seafoam Ocelot)"\nID="almalinux"\n'
RESCUE_OS_RELEASE = 'PRETTY_NAME="Rescue Linux"\nID=rescue\n'


def sh(*argv: str, env: dict[str, str] | None = None) -> str:
    """Run a command, fail loudly."""
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def blank(path: Path, size_mb: int) -> Path:
    with path.open("wb") as handle:
        handle.truncate(size_mb * 1024 * 1024)
    return path


def write_tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)


@dataclass
class Disk:
    """An attached image: its loop device and what the tests need to know about it."""

    image: Path
    loop: str
    facts: dict[str, str] = field(default_factory=dict)

    def part(self, number: int) -> str:
        return f"{self.loop}p{number}"


@dataclass
class DiskLab:
    """All images of the session and the loop devices they are attached to."""

    base: Path
    disks: dict[str, Disk] = field(default_factory=dict)
    mounted: list[Path] = field(default_factory=list)

    def attach(self, name: str, image: Path, *, read_only: bool = False) -> Disk:
        argv = ["losetup", "--find", "--show", "--partscan"]
        loop = sh(*argv, *(["--read-only"] if read_only else []), str(image)).strip()
        disk = Disk(image, loop)
        self.disks[name] = disk
        subprocess.run(["partx", "-a", loop], capture_output=True, check=False)
        subprocess.run(["partx", "-u", loop], capture_output=True, check=False)
        return disk

    def scope(self, *names: str) -> list[str]:
        return [self.disks[name].loop for name in names]

    def our_loops(self) -> set[str]:
        return {disk.loop for disk in self.disks.values()}

    def leaked_loops(self) -> list[str]:
        """Loop devices over one of our devices that the code under test left attached."""
        listing = json.loads(sh("losetup", "--list", "--json", "-O", "NAME,BACK-FILE") or "{}")
        ours = self.our_loops()
        return [
            entry["name"]
            for entry in listing.get("loopdevices", [])
            if any(str(entry.get("back-file") or "").startswith(loop) for loop in ours)
        ]

    def mounts_of_ours(self) -> list[str]:
        """Mountpoints of our devices or under our directory, deepest (newest) first."""
        found = []
        ours = self.our_loops() | set(self.leaked_loops())
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            fields = line.split(" ")
            point = fields[4].replace("\\040", " ")
            source = fields[fields.index("-", 6) + 2]
            if point.startswith(str(self.base)) or any(source.startswith(o) for o in ours):
                found.append(point)
        return list(reversed(found))

    def cleanup(self) -> None:
        for point in self.mounts_of_ours():
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)
        for loop in self.leaked_loops():
            subprocess.run(["losetup", "-d", loop], capture_output=True, check=False)
        for disk in self.disks.values():
            subprocess.run(["losetup", "-d", disk.loop], capture_output=True, check=False)


def build_debian(lab: DiskLab) -> None:
    image = blank(lab.base / "debian.img", 96)
    root_uuid, home_partuuid = str(uuid.uuid4()), str(uuid.uuid4())
    sh(
        "sgdisk",
        "-n1:0:+48M",
        "-c1:root",
        "-n2:0:+16M",
        "-c2:guesthome",
        f"-u2:{home_partuuid}",
        "-n15:0:+16M",
        "-t15:ef00",
        "-c15:efi",
        str(image),
    )
    disk = lab.attach("debian", image)
    sh("mkfs.vfat", "-i", "1234ABCD", "-n", "EFI", disk.part(15))
    fstab = (
        "# /etc/fstab of a Debian-like guest\n"
        f"UUID={root_uuid} / ext4 errors=remount-ro 0 1\n"
        "UUID=1234-ABCD /boot/efi vfat umask=0077 0 1\n"
        "PARTLABEL=guesthome /home ext4 defaults,nofail 0 2\n"
        "LABEL=gone /data ext4 defaults,nofail 0 2\n"
        f"PARTUUID={home_partuuid} /escape ext4 defaults 0 2\n"
        "/dev/vda2 /srv ext4 defaults,x-systemd.automount 0 2\n"
        "server:/export /nfs nfs defaults 0 0\n"
        "/swapfile none swap sw 0 0\n"
        "tmpfs /tmp tmpfs defaults 0 0\n"
        "UUID=1234-ABCD /efi2 vfat noauto 0 0\n"
        "/srv /srv2 none bind 0 0\n"
    )
    tree = lab.base / "debian-root"
    write_tree(
        tree,
        {"etc/os-release": DEBIAN_OS_RELEASE, "etc/fstab": fstab, "etc/hostname": "debian-guest\n"},
    )
    for directory in (
        "boot/efi",
        "home",
        "data",
        "srv",
        "srv2",
        "efi2",
        "dev",
        "proc",
        "sys",
        "run",
        "tmp",
    ):
        (tree / directory).mkdir(parents=True, exist_ok=True)
    (tree / "escape").symlink_to("/etc")
    sh("mkfs.ext4", "-q", "-U", root_uuid, "-L", "debroot", "-d", str(tree), disk.part(1))
    home = lab.base / "debian-home"
    write_tree(home, {"debian/.profile": "# home of debian\n"})
    sh("mkfs.ext4", "-q", "-L", "debhome", "-d", str(home), disk.part(2))
    disk.facts.update(root_uuid=root_uuid, home_partuuid=home_partuuid)


def _mounted_tree(lab: DiskLab, device: str, files: dict[str, str], name: str) -> Path:
    point = lab.base / name
    point.mkdir()
    sh("mount", device, str(point))
    try:
        write_tree(point, files)
    finally:
        sh("umount", str(point))
    return point


def build_xfs(lab: DiskLab) -> None:
    image = blank(lab.base / "rocky.img", 300)
    sh("mkfs.xfs", "-q", "-L", "rockyroot", str(image))
    fs_uuid = sh("blkid", "-p", "-s", "UUID", "-o", "value", str(image)).strip()
    disk = lab.attach("xfs", image)
    _mounted_tree(
        lab,
        disk.loop,
        {
            "etc/os-release": ROCKY_OS_RELEASE,
            "etc/fstab": f"UUID={fs_uuid} / xfs defaults 0 0\n",
        },
        "xfs-build",
    )
    disk.facts["uuid"] = fs_uuid
    clone = lab.base / "rocky-clone.img"
    sh("cp", "--sparse=always", str(image), str(clone))
    twin = lab.attach("xfs-twin", clone, read_only=True)
    point = lab.base / "rescue-xfs"
    point.mkdir()
    sh("mount", "-o", "ro", twin.loop, str(point))
    lab.mounted.append(point)


def build_lvm(lab: DiskLab) -> None:
    image = blank(lab.base / "lvm.img", 160)
    sh("sgdisk", "-n1:0:+32M", "-n2:0:0", "-t2:8e00", str(image))
    disk = lab.attach("lvm", image)
    sh("mkfs.ext4", "-q", "-L", "GBOOT", disk.part(1))
    pv = disk.part(2)
    config = ["--config", f'devices {{ filter = [ "a|^{pv}$|", "r|.*|" ] }}']
    sh("pvcreate", "-q", *config, pv, env=LVM_ENV)
    sh("vgcreate", "-q", *config, VG_NAME, pv, env=LVM_ENV)
    no_dm = [
        "--config",
        f'global {{ activation = 0 }} devices {{ filter = [ "a|^{pv}$|", "r|.*|" ] }}',
    ]
    for lv, megabytes in (("root", "64M"), ("swap", "16M")):
        sh("lvcreate", "-q", *no_dm, "-Zn", "-an", "-n", lv, "-L", megabytes, VG_NAME, env=LVM_ENV)
    report = ["--reportformat", "json", "--units", "b", "--nosuffix", *config]
    pvs = parse_pvs(
        sh(
            "pvs",
            *report,
            "-o",
            "pv_name,vg_name,vg_uuid,pv_uuid,pe_start,vg_extent_size",
            env=LVM_ENV,
        )
    )
    lvs = parse_lvs(
        sh(
            "lvs",
            *report,
            "-o",
            "vg_name,lv_name,vg_uuid,lv_uuid,lv_size,lv_attr,segtype,seg_start_pe,seg_pe_ranges",
            env=LVM_ENV,
        )
    )
    fstab = (
        f"/dev/mapper/{VG_NAME}-root / ext4 defaults 0 1\n"
        "LABEL=GBOOT /boot ext4 defaults 0 2\n"
        f"/dev/{VG_NAME}/swap none swap sw 0 0\n"
    )
    tree = lab.base / "lvm-root"
    write_tree(tree, {"etc/os-release": LVM_OS_RELEASE, "etc/fstab": fstab})
    (tree / "boot").mkdir()
    for volume in lvs:
        backing, offset, size = loop_geometry(volume, pvs)
        mapped = sh(
            "losetup",
            "--find",
            "--show",
            "--offset",
            str(offset),
            "--sizelimit",
            str(size),
            backing,
        ).strip()
        try:
            if volume.name == "root":
                sh("mkfs.ext4", "-q", "-L", "lvroot", "-d", str(tree), mapped)
            else:
                sh("mkswap", "-q", mapped)
        finally:
            sh("losetup", "-d", mapped)


def build_btrfs(lab: DiskLab) -> None:
    image = blank(lab.base / "ubuntu.img", 128)
    sh("mkfs.btrfs", "-q", "-L", "ubuntu", str(image))
    fs_uuid = sh("blkid", "-p", "-s", "UUID", "-o", "value", str(image)).strip()
    disk = lab.attach("btrfs", image)
    point = lab.base / "btrfs-build"
    point.mkdir()
    sh("mount", disk.loop, str(point))
    try:
        sh("btrfs", "-q", "subvolume", "create", str(point / "@"))
        sh("btrfs", "-q", "subvolume", "create", str(point / "@home"))
        write_tree(
            point / "@",
            {
                "etc/os-release": UBUNTU_OS_RELEASE,
                "etc/fstab": f"UUID={fs_uuid} / btrfs defaults,subvol=@ 0 1\n"
                f"UUID={fs_uuid} /home btrfs defaults,subvol=@home 0 2\n",
            },
        )
        (point / "@" / "home").mkdir()
        write_tree(point / "@home", {"ubuntu/notes.txt": "in @home\n"})
    finally:
        sh("umount", str(point))
    disk.facts["uuid"] = fs_uuid


def build_others(lab: DiskLab) -> None:
    config = blank(lab.base / "config.img", 4)
    sh("mkfs.vfat", "-n", "config-2", str(config))
    lab.attach("config", config)
    rescue = blank(lab.base / "rescue.img", 32)
    tree = lab.base / "rescue-tree"
    write_tree(tree, {"etc/os-release": RESCUE_OS_RELEASE, "etc/fstab": ""})
    sh("mkfs.ext4", "-q", "-L", "rescueroot", "-d", str(tree), str(rescue))
    disk = lab.attach("rescue", rescue, read_only=True)
    point = lab.base / "rescue-root"
    point.mkdir()
    sh("mount", "-o", "ro", disk.loop, str(point))
    lab.mounted.append(point)


@pytest.fixture(scope="session")
def disk_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DiskLab]:
    """Every test disk, attached once for the session."""
    if os.geteuid() != 0:
        pytest.skip("needs root (loop devices, mount)")
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"missing tools: {', '.join(missing)}")
    lab = DiskLab(tmp_path_factory.mktemp("disks"))
    try:
        build_debian(lab)
        build_xfs(lab)
        build_lvm(lab)
        build_btrfs(lab)
        build_others(lab)
        yield lab
    finally:
        lab.cleanup()


@pytest.fixture
def mountpoint(tmp_path: Path) -> Iterator[Path]:
    """A private directory to mount the guest on (never the host's /mnt), emptied after."""
    point = tmp_path / "mnt"
    point.mkdir()
    yield point
    if any(
        line.split(" ")[4].startswith(str(point))
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
    ):
        subprocess.run(["umount", "-R", "-l", str(point)], capture_output=True, check=False)
