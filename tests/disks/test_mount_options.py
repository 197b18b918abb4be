"""The options a disk session mounts with, on a scripted rescue (no root, no loop devices).

A guest's btrfs subvolume names never reach ``-o`` when they could change the options, and a
dry run's read-only mounts never replay a journal or a log (ext4 ``noload``, xfs
``norecovery``, btrfs ``rescue=nologreplay``, ``nologreplay`` on kernels before 5.9).
"""

from __future__ import annotations

import dataclasses

import pytest

from cloudrescue.disks.errors import MountFailedError, NoDiskFoundError
from cloudrescue.disks.probe import no_replay_options, safe_subvolume
from cloudrescue.disks.session import DiskSession

from .scripted import ScriptedRescue, Tree, Volume

UUID = "5b6f4c1e-2d7a-4b8e-9f10-3c2d1e0f9a8b"
OS_RELEASE = 'PRETTY_NAME="Ubuntu 24.04 LTS"\nID=ubuntu\n'


def ubuntu(root: str = "@rootfs") -> Tree:
    return {
        "etc/os-release": OS_RELEASE,
        "etc/fstab": f"UUID={UUID} / btrfs defaults,subvol={root} 0 1\n"
        f"UUID={UUID} /home btrfs defaults,subvol=@home 0 2\n",
        "home": None,
    }


def btrfs_rescue(root: str = "@rootfs") -> ScriptedRescue:
    """The instance's disk: one btrfs with its root in subvolume ``root`` and ``@home``."""
    subvolumes: dict[str, Tree] = {root: ubuntu(root), "@home": {"ubuntu/notes.txt": "home\n"}}
    return ScriptedRescue([Volume("/dev/vdb1", "btrfs", UUID, subvolumes=subvolumes)])


@pytest.mark.parametrize(
    ("fstype", "options"),
    [
        ("ext4", ["ro", "noload"]),
        ("ext3", ["ro", "noload"]),
        ("xfs", ["ro", "norecovery"]),
        ("btrfs", ["ro", "rescue=nologreplay"]),
        ("ext2", ["ro"]),  # no journal (and no noload option)
        ("vfat", ["ro"]),
        (None, ["ro"]),
    ],
)
def test_read_only_options_never_replay_a_journal(
    fstype: str | None, options: list[str]
) -> None:
    assert no_replay_options(fstype) == options


@pytest.mark.parametrize("name", ["@", "@rootfs", "root", "@snap shot", "été"])
def test_ordinary_subvolume_names_are_safe(name: str) -> None:
    assert safe_subvolume(name)


HOSTILE = ["@,x", "@,subvolid=5", "a=b", "new\nline", '@"q', "@'q", "back\\slash", ""]


@pytest.mark.parametrize("name", HOSTILE)
def test_subvolume_names_that_would_change_the_options_are_not_safe(name: str) -> None:
    assert not safe_subvolume(name)


@pytest.mark.parametrize(
    ("read_only", "root", "home"),
    [
        (False, "subvol=@rootfs", "subvol=@home"),
        (
            True,
            "ro,rescue=nologreplay,subvol=@rootfs",
            "subvol=@home,ro,rescue=nologreplay",
        ),
    ],
    ids=["repair", "dry-run"],
)
def test_a_subvolume_root_mounts_with_its_name(read_only: bool, root: str, home: str) -> None:
    rescue = btrfs_rescue()
    with DiskSession(rescue) as disks:
        guest = disks.mount(read_only=read_only)
        assert guest.filesystem.subvolume == "@rootfs"
        assert [(m.guest_path, m.host_path) for m in guest.mounts] == [
            ("/", "/mnt"),
            ("/home", "/mnt/home"),
        ]
        assert rescue.mount_argvs()[-2:] == [
            ["mount", "-t", "btrfs", "-o", root, "/dev/vdb1", "/mnt"],
            ["mount", "-t", "btrfs", "-o", home, "/dev/vdb1", "/mnt/home"],
        ]
    assert rescue.mounts == {} and disks.leftover == []
    probes = rescue.mount_argvs()[:-2]  # the probe looked read-only, never replaying the log
    assert probes and all("ro,rescue=nologreplay" in argv[4] for argv in probes)


@pytest.mark.parametrize("name", ["@,x", "a=b", "new\nline"])
def test_a_hostile_subvolume_name_is_refused_before_mount(name: str) -> None:
    rescue = btrfs_rescue()
    with DiskSession(rescue) as disks:
        found = disks.choose_root()
        hostile = dataclasses.replace(found, subvolume=name)
        with pytest.raises(MountFailedError, match="refusing the btrfs subvolume name") as error:
            disks.mount(root=hostile)
        assert repr(name) in error.value.message
    assert not any(name in " ".join(argv) for argv in rescue.commands)
    assert rescue.mounts == {} and disks.leftover == []


@pytest.mark.parametrize("name", ["@,x", "@,subvolid=5", "a=b", "@'q"])
def test_a_root_in_a_hostile_subvolume_is_not_mounted_and_said(name: str) -> None:
    rescue = btrfs_rescue(root=name)
    with DiskSession(rescue) as disks, pytest.raises(NoDiskFoundError) as error:
        disks.mount()
    assert f"refused the subvolume names {name!r}" in error.value.message
    assert not any(name in " ".join(argv) for argv in rescue.commands if argv[0] != "btrfs")
    assert rescue.mounts == {} and disks.leftover == []


def test_a_kernel_before_5_9_gets_the_old_no_log_replay_option() -> None:
    rescue = btrfs_rescue()
    rescue.refuse = {"rescue=nologreplay"}
    with DiskSession(rescue) as disks:
        disks.mount(read_only=True)
        options = [argv[4] for argv in rescue.mount_argvs()]
        assert options[-4:] == [
            "ro,rescue=nologreplay,subvol=@rootfs",
            "ro,nologreplay,subvol=@rootfs",
            "subvol=@home,ro,rescue=nologreplay",
            "subvol=@home,ro,nologreplay",
        ]
        assert set(rescue.mounts) == {"/mnt", "/mnt/home"}
    # A kernel that knows neither: no root is mounted at all, rather than with a log replay.
    rescue = btrfs_rescue()
    rescue.refuse = {"rescue=nologreplay", "nologreplay"}
    with DiskSession(rescue) as disks, pytest.raises(NoDiskFoundError):
        disks.mount(read_only=True)
    assert all("nologreplay" in argv[4] for argv in rescue.mount_argvs())
    assert rescue.mounts == {}


@pytest.mark.parametrize(
    ("fstype", "options"), [("ext4", "ro,noload"), ("xfs", "ro,norecovery,nouuid")]
)
def test_a_dry_run_mounts_ext4_and_xfs_without_replaying(fstype: str, options: str) -> None:
    fstab = f"UUID={UUID} / {fstype} defaults 0 1\n"
    tree: Tree = {"etc/os-release": OS_RELEASE, "etc/fstab": fstab}
    rescue = ScriptedRescue([Volume("/dev/vdb1", fstype, UUID, files=tree)])
    with DiskSession(rescue) as disks:
        guest = disks.mount(read_only=True)
        assert guest.read_only
        root = ["mount", "-t", fstype, "-o", options, "/dev/vdb1", "/mnt"]
        assert rescue.mount_argvs()[-1] == root
        assert all(argv[4].startswith(options) for argv in rescue.mount_argvs())
