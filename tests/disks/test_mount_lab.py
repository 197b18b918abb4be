"""Discovery, root choice, mounting and unmounting with ``LocalHost`` on real loop devices."""

from __future__ import annotations

import glob
import os
import stat
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from cloudrescue.disks import (
    DiskSession,
    MountedGuest,
    MountpointInUseError,
    NoDiskFoundError,
    RootFilesystem,
    SeveralRootsError,
)
from cloudrescue.errors import DiskError
from cloudrescue.remote.local import LocalHost

from .conftest import VG_NAME, DiskLab

# alone: clean_after compares the machine's whole mount table (and the disk lab's volume group
# has a fixed name)
pytestmark = [pytest.mark.lab, pytest.mark.alone]


def mountpoints() -> list[str]:
    return [
        line.split(" ")[4].replace("\\040", " ")
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
    ]


def probe_dirs() -> set[str]:
    return set(glob.glob(os.path.join(tempfile.gettempdir(), "cloudrescue-probe.*")))


@pytest.fixture
def clean_after(disk_lab: DiskLab, mountpoint: Path) -> Iterator[None]:
    """Check that the test left nothing mounted, attached or created behind."""
    before_mounts, before_dirs = sorted(mountpoints()), probe_dirs()
    yield
    assert not [p for p in mountpoints() if p.startswith(str(mountpoint))]
    assert disk_lab.leaked_loops() == []
    assert [p for p in disk_lab.mounts_of_ours() if Path(p) not in disk_lab.mounted] == []
    assert sorted(mountpoints()) == before_mounts
    assert probe_dirs() == before_dirs


def session(lab: DiskLab, mountpoint: Path, *names: str) -> DiskSession:
    scope = lab.scope(*names, "config", "rescue", "xfs-twin")
    return DiskSession(LocalHost(), mountpoint=str(mountpoint), scope=scope)


def mount_of(guest: MountedGuest, path: str) -> str | None:
    return next((m.source for m in guest.mounts if m.guest_path == path), None)


@pytest.mark.usefixtures("clean_after")
def test_discovery_sets_aside_rescue_disks_and_config_drive(
    disk_lab: DiskLab, mountpoint: Path
) -> None:
    with session(disk_lab, mountpoint, "debian", "xfs", "lvm", "btrfs") as disks:
        inventory = disks.discover()
        assert set(inventory.rescue_disks) >= set(disk_lab.scope("rescue", "xfs-twin"))
        notes = {seen.device: seen.note for seen in inventory.seen}
        assert notes[disk_lab.disks["config"].loop].startswith("config drive")
        candidates = {fs.device: fs for fs in inventory.candidates}
        debian = disk_lab.disks["debian"]
        assert set(candidates) >= {debian.part(1), debian.part(2), disk_lab.disks["xfs"].loop}
        assert debian.part(15) not in candidates  # vfat
        lvs = {fs.lv.lv_name: fs for fs in inventory.filesystems if fs.lv}
        assert lvs["root"].fstype == "ext4" and lvs["swap"].fstype == "swap"
        assert "root" in {fs.lv.lv_name for fs in inventory.candidates if fs.lv}
        assert lvs["root"].lv is not None and lvs["root"].lv.mapping == "loop"
        assert inventory.device_mapper is False
        assert not any(loop in candidates for loop in disk_lab.scope("rescue", "xfs-twin"))


@pytest.mark.usefixtures("clean_after")
def test_several_roots_are_listed_and_the_disk_selector_picks(
    disk_lab: DiskLab, mountpoint: Path
) -> None:
    debian, xfs = disk_lab.disks["debian"], disk_lab.disks["xfs"]
    with session(disk_lab, mountpoint, "debian", "xfs", "lvm") as disks:
        with pytest.raises(SeveralRootsError) as raised:
            disks.choose_root()
        message = raised.value.message
        assert debian.part(1) in message and "Debian GNU/Linux 12" in message
        assert xfs.loop in message and "Rocky Linux 9.3" in message
        assert f"{VG_NAME}/root" in message and "--disk" in message
        assert f"{VG_NAME}/root" in raised.value.candidates
        offered: list[str] = []

        def ask(roots: Sequence[RootFilesystem]) -> RootFilesystem:
            offered.extend(root.filesystem.device for root in roots)
            return roots[-1]

        assert disks.choose_root(ask=ask).filesystem.device == offered[-1]
        assert len(offered) == 3 and debian.part(1) in offered
        assert disks.choose_root(disk=debian.part(1)).os_id == "debian"
        assert disks.choose_root(disk="LABEL=rockyroot").filesystem.device == xfs.loop
        assert disks.choose_root(disk=f"{VG_NAME}/root").os_id == "almalinux"
        with pytest.raises(NoDiskFoundError, match="not a Linux root"):
            disks.choose_root(disk=debian.part(15))
        with pytest.raises(NoDiskFoundError, match="no root filesystem"):
            disks.choose_root(disk=debian.part(2))
        with pytest.raises(NoDiskFoundError, match="nothing matches"):
            disks.choose_root(disk="UUID=0000")
        with pytest.raises(DiskError, match="the rescue system's own disk"):
            disks.choose_root(disk=disk_lab.disks["rescue"].loop)
        guest = disks.mount(disk=xfs.facts["uuid"])
        assert guest.filesystem.filesystem.device == xfs.loop
        # The rescue side has a mounted XFS clone with the same UUID: nouuid is required.
        assert "nouuid" in guest.mounts[0].options
        assert (mountpoint / "etc/os-release").read_text().startswith('NAME="Rocky')
    assert disks.report.ok and not disks.report.lazy


@pytest.mark.usefixtures("clean_after")
def test_debian_guest_with_fstab_extras(disk_lab: DiskLab, mountpoint: Path) -> None:
    debian = disk_lab.disks["debian"]
    with session(disk_lab, mountpoint, "debian") as disks:
        guest = disks.mount()
        assert guest.root == str(mountpoint)
        assert (mountpoint / "etc/hostname").read_text() == "debian-guest\n"
        assert mount_of(guest, "/home") == debian.part(2)
        assert (mountpoint / "home/debian/.profile").exists()
        assert mount_of(guest, "/srv") == debian.part(2)  # /dev/vda2: partition 2 of the disk
        skipped = {skip.mountpoint: skip for skip in guest.skipped}
        if "vfat" in Path("/proc/filesystems").read_text():
            assert mount_of(guest, "/boot/efi") == debian.part(15)
        else:  # this test kernel has no vfat: reported, not fatal
            assert skipped["/boot/efi"].kind == "mount-failed"
        assert skipped["/data"].kind == "missing-device"
        assert [skip.spec for skip in guest.missing_devices] == ["LABEL=gone"]
        assert {skipped[p].kind for p in ("/nfs", "/tmp", "/efi2", "/srv2", "none")} == {
            "network",
            "virtual",
            "noauto",
            "bind",
            "swap",
        }
        # /escape -> /etc in the guest: never mounted, neither on the host's nor the guest's /etc.
        assert skipped["/escape"].kind == "bad-mountpoint"
        assert "symlink" in skipped["/escape"].reason
        assert "/etc" not in mountpoints() and str(mountpoint / "etc") not in mountpoints()
        order = [m.guest_path for m in guest.mounts]
        assert order[0] == "/" and [m.kind for m in guest.mounts] == ["root"] + ["fstab"] * (
            len(order) - 1
        )
        assert guest.fstab[0].mountpoint == "/"
    assert disks.guest is None


@pytest.mark.usefixtures("clean_after")
def test_chroot_binds_are_undone_without_touching_the_host(
    disk_lab: DiskLab, mountpoint: Path
) -> None:
    with session(disk_lab, mountpoint, "debian") as disks:
        guest = disks.mount(chroot=True)
        binds = [m.guest_path for m in guest.mounts if m.kind == "bind"]
        assert binds == ["/dev", "/dev/pts", "/proc", "/sys", "/run"]
        assert (mountpoint / "proc/self").exists() and (mountpoint / "dev/null").exists()
        if os.path.ismount("/sys/fs/cgroup"):  # --rbind brings the submounts along
            assert os.path.ismount(mountpoint / "sys/fs/cgroup")
    # clean_after checks that the rescue system's own mounts are all still there.


@pytest.mark.parametrize("state", ["missing", "stale"])
@pytest.mark.usefixtures("clean_after")
def test_missing_or_stale_partition_nodes_are_remade(
    disk_lab: DiskLab, mountpoint: Path, state: str
) -> None:
    """Like a rescue system without udev: /dev lacks the partition, or has an old node."""
    debian = disk_lab.disks["debian"]
    home = Path(debian.part(2))
    home.unlink()
    if state == "stale":  # numbers of another device: the root partition
        os.mknod(home, 0o600 | stat.S_IFBLK, Path(debian.part(1)).stat().st_rdev)
    try:
        with session(disk_lab, mountpoint, "debian") as disks:
            guest = disks.mount()
            assert mount_of(guest, "/home") == str(home)
            assert (mountpoint / "home/debian/.profile").exists()
        assert not home.exists()  # the node cloudrescue made is removed again
    finally:
        if home.exists():
            home.unlink()
        # Re-announce the partition so that devtmpfs makes its node again.
        subprocess.run(["partx", "-d", "--nr", "2", debian.loop], capture_output=True, check=False)
        subprocess.run(["partx", "-a", "--nr", "2", debian.loop], capture_output=True, check=False)
    assert home.is_block_device()


@pytest.mark.usefixtures("clean_after")
def test_a_disk_without_dev_node_is_not_attached_here(disk_lab: DiskLab, mountpoint: Path) -> None:
    """The lab shows each rescue system only its own disks' nodes (sysfs lists them all)."""
    xfs = Path(disk_lab.disks["xfs"].loop)
    rdev = xfs.stat().st_rdev
    xfs.unlink()
    try:
        with session(disk_lab, mountpoint, "debian", "xfs") as disks:
            notes = {seen.device: seen.note for seen in disks.discover().seen}
            assert notes[str(xfs)] == "no /dev node: not attached to this system"
            assert disks.choose_root().os_id == "debian"
    finally:
        os.mknod(xfs, 0o600 | stat.S_IFBLK, rdev)


@pytest.mark.usefixtures("clean_after")
def test_lvm_guest_through_loop_mapped_lvs(disk_lab: DiskLab, mountpoint: Path) -> None:
    lvm = disk_lab.disks["lvm"]
    with session(disk_lab, mountpoint, "lvm") as disks:
        guest = disks.mount()
        assert guest.lvm and guest.device_mapper is False
        assert guest.filesystem.os_name == "AlmaLinux 9.4 (Seafoam Ocelot)"
        assert mount_of(guest, "/boot") == lvm.part(1)  # LABEL=GBOOT
        assert {skip.kind for skip in guest.skipped} == {"swap"}
        assert len(disk_lab.leaked_loops()) == 2  # root and swap LVs, until unmount
        (mountpoint / "etc/written").write_text("through the mapped LV\n")
    report = disks.report
    assert any("detached" in line for line in report.done)
    with session(disk_lab, mountpoint, "lvm") as again:
        again.mount()
        assert (mountpoint / "etc/written").read_text() == "through the mapped LV\n"
        (mountpoint / "etc/written").unlink()


@pytest.mark.usefixtures("clean_after")
def test_btrfs_guest_root_subvolume(disk_lab: DiskLab, mountpoint: Path) -> None:
    with session(disk_lab, mountpoint, "btrfs") as disks:
        guest = disks.mount()
        assert guest.filesystem.subvolume == "@"
        assert "subvol=@" in guest.mounts[0].options
        assert mount_of(guest, "/home") == disk_lab.disks["btrfs"].loop
        assert (mountpoint / "home/ubuntu/notes.txt").read_text() == "in @home\n"


@pytest.mark.usefixtures("clean_after")
def test_read_only_mount(disk_lab: DiskLab, mountpoint: Path) -> None:
    with session(disk_lab, mountpoint, "btrfs") as disks:
        guest = disks.mount(read_only=True)
        assert all("ro" in m.options for m in guest.mounts)
        with pytest.raises(OSError):
            (mountpoint / "etc/nope").write_text("x")


@pytest.mark.usefixtures("clean_after")
def test_busy_mountpoint_is_refused_and_everything_undone(
    disk_lab: DiskLab, mountpoint: Path
) -> None:
    subprocess.run(["mount", "-t", "tmpfs", "busy", str(mountpoint)], check=True)
    try:
        disks = session(disk_lab, mountpoint, "lvm")
        with pytest.raises(MountpointInUseError, match="already has busy"):
            disks.mount()
        assert disk_lab.leaked_loops() == []  # the LV mappings made by discovery are gone
        assert disks.teardown.steps == []
    finally:
        subprocess.run(["umount", str(mountpoint)], check=True)


@pytest.mark.usefixtures("clean_after")
def test_failure_after_the_root_is_mounted_undoes_everything(
    disk_lab: DiskLab, mountpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> None:
        assert os.path.ismount(mountpoint)  # the root is mounted, the LVs are mapped
        raise RuntimeError("interrupted")

    monkeypatch.setattr(DiskSession, "_mount_fstab", broken)
    disks = session(disk_lab, mountpoint, "lvm")
    with pytest.raises(RuntimeError, match="interrupted"):
        disks.mount()
    assert disks.teardown.steps == [] and disks.guest is None
    assert any("detached" in line for line in disks.report.done)


@pytest.mark.usefixtures("clean_after")
def test_busy_guest_is_reported_then_detached_lazily(disk_lab: DiskLab, mountpoint: Path) -> None:
    disks = session(disk_lab, mountpoint, "btrfs")
    disks.teardown.retry_delay = 0.05
    disks.mount()
    holder = subprocess.Popen(["sleep", "60"], cwd=mountpoint / "home")
    try:
        report = disks.unmount()
    finally:
        holder.kill()
        holder.wait()
    assert report.ok
    assert any(str(mountpoint / "home") in line for line in report.busy)
    assert any("sleep" in line for line in report.busy)  # fuser -vm names the holder
    assert any("lazily" in line for line in report.lazy)
    assert disks.unmount().done == []  # idempotent
