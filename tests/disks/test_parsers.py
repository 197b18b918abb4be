"""Parsers and pure decisions of the disks package, on outputs captured on a real machine.

``data/`` holds real outputs captured with the images of ``conftest.py`` attached (loop1:
Debian-like GPT disk, loop2: XFS, loop3: its mounted clone, loop4: LVM, loop5: btrfs, loop6:
config drive, loop7: mounted rescue root, also the lower dir of an overlay) and no udev.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cloudrescue.disks.blockdev import (
    BlockDevice,
    parse_blkid_export,
    parse_lsblk,
    partition_number,
    with_blkid,
)
from cloudrescue.disks.discovery import DiskInventory, Filesystem, rescue_reason, rescue_usage
from cloudrescue.disks.errors import SeveralRootsError
from cloudrescue.disks.fstab import (
    guest_disk_names,
    parse_fstab,
    path_order,
    resolve_spec,
    safe_options,
    skip_reason,
)
from cloudrescue.disks.lvm import (
    LogicalVolume,
    LvDevice,
    Segment,
    dm_name,
    loop_geometry,
    lvm_config,
    parse_lvs,
    parse_pvs,
)
from cloudrescue.disks.mountinfo import mount_containing, parse_mountinfo, parse_swaps
from cloudrescue.disks.probe import os_display_name, parse_os_release

DATA = Path(__file__).parent / "data"


def read(name: str) -> str:
    return (DATA / name).read_text()


def by_name(devices: list[BlockDevice]) -> dict[str, BlockDevice]:
    return {node.name: node for disk in devices for node in disk.walk()}


# -- lsblk / blkid ---------------------------------------------------------------------------


def test_lsblk_tree_with_mountpoints() -> None:
    devices = by_name(parse_lsblk(read("lsblk-lab.json")))
    debian = devices["loop1"]
    assert [child.name for child in debian.children] == ["loop1p1", "loop1p2", "loop1p15"]
    assert debian.type == "loop" and devices["loop1p15"].type == "part"
    assert devices["loop1p1"].size == 48 * 1024 * 1024
    assert devices["loop1p1"].fstype is None  # no udev on the capturing machine
    assert devices["loop7"].mountpoints == ("/tmp/crlab54ht5tzy/rescue-root",)
    assert devices["vda"].mountpoints == ("/run/netns", "/")
    assert devices["loop2"].mountpoints == ()
    assert devices["loop1p2"].majmin == "259:7"
    assert devices["loop1p2"].path == "/dev/loop1p2"


def test_lsblk_old_mountpoint_column_and_no_path() -> None:
    devices = by_name(parse_lsblk(read("lsblk-old-columns.json")))
    assert devices["loop3"].mountpoints == ("/tmp/crlab54ht5tzy/rescue-xfs",)
    assert devices["loop1p15"].path == "/dev/loop1p15"
    assert devices["loop1"].mountpoints == ()


def test_lsblk_older_string_fields() -> None:
    text = (
        '{"blockdevices": [{"name": "vg0-root", "kname": "dm-0", "type": "lvm", "size": "1024",'
        ' "ro": "0", "mountpoint": "/", "maj:min": "253:0"}]}'
    )
    [device] = parse_lsblk(text)
    assert device.path == "/dev/mapper/vg0-root"
    assert device.size == 1024 and device.read_only is False and device.mountpoints == ("/",)


def test_blkid_export_fills_what_lsblk_lacks() -> None:
    sections = read("blkid-export.txt").split("== ")[1:]
    probes = {s.splitlines()[0]: parse_blkid_export(s.split("\n", 1)[1]) for s in sections}
    efi = probes["/dev/loop1p15"]
    assert efi["TYPE"] == "vfat" and efi["UUID"] == "1234-ABCD"
    assert probes["/dev/loop4p2"]["VERSION"] == "LVM2 001"  # backslash escape undone
    assert probes["/dev/loop6"]["LABEL"] == "config-2"
    node = BlockDevice("loop1p15", "loop1p15", "/dev/loop1p15", "part", 16, label="kept")
    filled = with_blkid(node, efi)
    assert (filled.fstype, filled.uuid, filled.label, filled.partlabel) == (
        "vfat",
        "1234-ABCD",
        "kept",
        "efi",
    )


@pytest.mark.parametrize(
    ("name", "disk", "number"),
    [
        ("vdb15", "vdb", 15),
        ("loop5p1", "loop5", 1),
        ("nvme0n1p3", "nvme0n1", 3),
        ("vdb", "vdb", None),
    ],
)
def test_partition_number(name: str, disk: str, number: int | None) -> None:
    whole = BlockDevice(disk, disk, f"/dev/{disk}", "disk", 1)
    node = whole if name == disk else BlockDevice(name, name, f"/dev/{name}", "part", 1)
    assert partition_number(node, whole) == number


# -- mounts: who is the rescue system --------------------------------------------------------


def test_mountinfo_and_overlay_lower_dir() -> None:
    mounts = parse_mountinfo(read("mountinfo-lab.txt"))
    overlay = next(m for m in mounts if m.fstype == "overlay")
    assert overlay.overlay_dirs()[0] == "/tmp/crlab54ht5tzy/rescue-root"
    holder = mount_containing(mounts, "/tmp/crlab54ht5tzy/rescue-root/etc")
    assert holder is not None and holder.source == "/dev/loop7" and holder.majmin == "7:7"
    assert mount_containing(mounts, "/srv/x") is not None


def test_overlay_lower_dir_marks_its_disk_as_the_rescue_system() -> None:
    # The lab's rescue: / is an overlay whose lower dir is the rescue disk, mounted elsewhere.
    lines = [
        "27 1 0:40 / / rw,relatime - overlay overlay rw,lowerdir=/run/rescue/ro,"
        "upperdir=/run/rescue/rw/upper,workdir=/run/rescue/rw/work",
        "30 27 7:7 / /run/rescue/ro ro,relatime - ext4 /dev/loop7 ro",
    ]
    usage = rescue_usage(parse_mountinfo("\n".join(lines)), [])
    disk = BlockDevice("loop7", "loop7", "/dev/loop7", "loop", 1, majmin="7:7")
    assert rescue_reason(disk, usage) is not None
    other = BlockDevice("loop5", "loop5", "/dev/loop5", "loop", 1, majmin="7:5")
    assert rescue_reason(other, usage) is None


def test_swap_and_btrfs_sources_count_as_in_use() -> None:
    swaps = parse_swaps(
        "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
        "/dev/vdc1                               partition\t1048572\t\t0\t\t-2\n"
    )
    mounts = parse_mountinfo("29 1 0:45 /@ / rw - btrfs /dev/vda2 rw,subvol=/@")
    usage = rescue_usage(mounts, swaps)
    assert usage.paths == {"/dev/vdc1", "/dev/vda2"} and not usage.majmins
    part = BlockDevice("vda2", "vda2", "/dev/vda2", "part", 1, majmin="252:2")
    assert rescue_reason(BlockDevice("vda", "vda", "/dev/vda", "disk", 1, children=(part,)), usage)


# -- LVM --------------------------------------------------------------------------------------


def test_pvs_lvs_and_loop_geometry() -> None:
    pvs = parse_pvs(read("pvs.json"))
    lvs = {lv.name: lv for lv in parse_lvs(read("lvs.json"))}
    assert pvs[0].pe_start == 1048576 and pvs[0].extent_size == 4 * 1024 * 1024
    assert not lvs["root"].active  # "-wi-XX----": no device-mapper
    assert loop_geometry(lvs["root"], pvs) == ("/dev/loop4p2", 1048576, 64 * 1024 * 1024)
    assert loop_geometry(lvs["swap"], pvs) == (
        "/dev/loop4p2",
        1048576 + 16 * 4 * 1024 * 1024,
        16 * 1024 * 1024,
    )


def test_non_linear_and_fragmented_lvs_are_refused() -> None:
    pvs = parse_pvs(read("pvs.json"))
    striped = LogicalVolume(
        "vg", "data", "u", "l", 1, "-wi-a-----",
        (Segment("striped", 0, (("/dev/loop4p2", 0, 9), ("/dev/vdc1", 0, 9))),),
    )  # fmt: skip
    with pytest.raises(ValueError, match="striped"):
        loop_geometry(striped, pvs)
    split = LogicalVolume(
        "vg", "data", "u", "l", 1, "-wi-a-----",
        (Segment("linear", 0, (("/dev/loop4p2", 0, 9),)),
         Segment("linear", 10, (("/dev/loop4p2", 20, 29),))),
    )  # fmt: skip
    assert split.linear_extents() is None
    joined = LogicalVolume(
        "vg", "data", "u", "l", 1, "-wi-a-----",
        (Segment("linear", 0, (("/dev/loop4p2", 0, 9),)),
         Segment("linear", 10, (("/dev/loop4p2", 10, 29),))),
    )  # fmt: skip
    assert joined.linear_extents() == ("/dev/loop4p2", 0, 30)


def test_lvm_names_and_config() -> None:
    assert dm_name("my-vg", "root") == "my--vg-root"
    config = lvm_config(["/dev/vdb2", "/dev/loop4p2"])
    assert '"a|^/dev/loop4p2$|"' in config and '"r|.*|"' in config
    assert "use_devicesfile = 0" in config


# -- fstab ------------------------------------------------------------------------------------

FSTAB = """\
# comment
UUID=ABCD-0001 / ext4 errors=remount-ro 0 1
/dev/vda15 /boot/efi vfat umask=0077 0 1
LABEL=my\\040data /srv/my\\040data ext4 defaults,nofail,x-systemd.device-timeout=5 0 2
/dev/mapper/vg--x-home /home xfs defaults,context=system_u:object_r:home_t 0 2
server:/export /nfs nfs defaults 0 0
//nas/share /cifs cifs credentials=/root/c 0 0
/swapfile none swap sw 0 0
tmpfs /tmp tmpfs defaults 0 0
/dev/vdb1 /data ext4 noauto 0 0
/srv /srv2 none bind 0 0
/dev/vdc1 /x/../../etc ext4 defaults 0 0
/dev/vdc1 /boot ext4
"""


def test_fstab_parsing_and_order() -> None:
    entries = parse_fstab(FSTAB)
    assert entries[2].spec == "LABEL=my data" and entries[2].mountpoint == "/srv/my data"
    assert entries[-1].fstype == "ext4" and entries[-1].options == ("defaults",)
    order = [entry.mountpoint for entry in path_order(entries)]
    assert order.index("/boot") < order.index("/boot/efi")
    assert order[0] == "/"


def test_fstab_skip_reasons() -> None:
    reasons = {e.mountpoint: skip_reason(e) for e in parse_fstab(FSTAB)}
    assert reasons["/boot/efi"] is None and reasons["/home"] is None
    kinds = {point: reason[0] for point, reason in reasons.items() if reason}
    assert kinds == {
        "/nfs": "network",
        "/cifs": "network",
        "none": "swap",
        "/tmp": "virtual",
        "/data": "noauto",
        "/srv2": "bind",
        "/x/../../etc": "bad-mountpoint",
    }


def test_safe_options_drop_boot_and_selinux_only() -> None:
    entries = {e.mountpoint: e for e in parse_fstab(FSTAB)}
    assert safe_options(entries["/srv/my data"]) == []
    assert safe_options(entries["/home"]) == []
    assert safe_options(entries["/boot/efi"]) == ["umask=0077"]


def fs(device: str, **facts: object) -> Filesystem:
    base: dict[str, object] = {
        "fstype": "ext4",
        "size": 1,
        "disk": "/dev/vdb",
        "disks": ("/dev/vdb",),
    }
    return Filesystem(device=device, **{**base, **facts})  # type: ignore[arg-type]


LV_HOME = LvDevice("vg-x", "home", "Vg-Uuid", "Lv-Uuid", 1, "/dev/loop9", "loop", ("/dev/vdb2",))
OWN = [
    fs("/dev/vdb1", uuid="abcd-0001", partition=1, label="root"),
    fs("/dev/vdb15", fstype="vfat", uuid="1234-ABCD", partition=15, partlabel="EFI System"),
    fs("/dev/vdb3", label="my data", partuuid="AA-BB", partition=3),
    fs("/dev/loop9", fstype="xfs", lv=LV_HOME, uuid="u-home"),
]


@pytest.mark.parametrize(
    ("spec", "device"),
    [
        ("UUID=ABCD-0001", "/dev/vdb1"),
        ('UUID="abcd-0001"', "/dev/vdb1"),
        ("/dev/disk/by-uuid/1234-ABCD", "/dev/vdb15"),
        ("LABEL=my data", "/dev/vdb3"),
        ("/dev/disk/by-label/my\\x20data", "/dev/vdb3"),
        ("PARTUUID=aa-bb", "/dev/vdb3"),
        ("PARTLABEL=EFI System", "/dev/vdb15"),
        ("/dev/mapper/vg--x-home", "/dev/loop9"),
        ("/dev/vg-x/home", "/dev/loop9"),
        ("/dev/disk/by-id/dm-uuid-LVM-VgUuidLvUuid", "/dev/loop9"),
        ("/dev/vda15", "/dev/vdb15"),
        ("/dev/sda1", "/dev/vdb1"),
        ("/dev/vdb1", None),  # the guest's second disk is not the rescue's vdb
        ("UUID=not-there", None),
        ("/dev/disk/by-path/pci-0000:00:05.0-part1", None),
    ],
)
def test_resolve_spec_against_the_instance_disk_only(spec: str, device: str | None) -> None:
    found = resolve_spec(spec, OWN, "/dev/vdb", guest_disk_names([]))
    assert (found.device if found else None) == device


def test_guest_disk_name_comes_from_the_root_line() -> None:
    entries = parse_fstab("/dev/xvda1 / ext4 defaults 0 1\n/dev/xvda15 /boot/efi vfat d 0 0\n")
    assert guest_disk_names(entries) == ("xvda",)
    found = resolve_spec("/dev/xvda15", OWN, "/dev/vdb", guest_disk_names(entries))
    assert found is not None and found.device == "/dev/vdb15"
    assert resolve_spec("/dev/vda15", OWN, "/dev/vdb", guest_disk_names(entries)) is None


def test_selectors() -> None:
    root, efi, data, home = OWN
    assert root.matches("/dev/vdb1") and root.matches("vdb1") and root.matches("ABCD-0001")
    assert root.matches("UUID=abcd-0001") and root.matches("LABEL=root") and root.matches("vdb")
    assert home.matches("vg-x/home") and home.matches("/dev/mapper/vg--x-home")
    assert not efi.matches("root") and not data.matches("UUID=abcd-0001")


def test_xfs_uuid_clash() -> None:
    mounted_twin = BlockDevice(
        "vda1", "vda1", "/dev/vda1", "part", 1, fstype="xfs", uuid="U-1", mountpoints=("/",)
    )
    unknown = BlockDevice("vda2", "vda2", "/dev/vda2", "part", 1, mountpoints=("/boot",))
    guest = fs("/dev/vdb1", fstype="xfs", uuid="u-1")
    other = fs("/dev/vdb2", fstype="xfs", uuid="u-2")
    inventory = DiskInventory((mounted_twin,), (guest, other), ("/dev/vda",), ())
    assert inventory.uuid_clash(guest) and not inventory.uuid_clash(other)
    assert inventory.uuid_clash(fs("/dev/vdb3", fstype="xfs"))  # own UUID unknown
    blind = DiskInventory((unknown,), (other,), ("/dev/vda",), ())
    assert blind.uuid_clash(other)  # a mounted device of unknown UUID: cannot tell


# -- os-release -------------------------------------------------------------------------------


def test_os_release() -> None:
    values = parse_os_release('NAME="Rocky Linux"\nVERSION="9.3 (Blue Onyx)"\n# c\nID=rocky\n')
    assert os_display_name(values) == "Rocky Linux 9.3 (Blue Onyx)"
    assert os_display_name(parse_os_release("PRETTY_NAME='Debian 12'\n")) == "Debian 12"
    assert os_display_name(parse_os_release("ID=alpine\n")) == "alpine"
    assert os_display_name({}) is None


# -- root choice ------------------------------------------------------------------------------


def test_volume_id_prefers_the_disk_with_its_serial(monkeypatch: pytest.MonkeyPatch) -> None:
    from cloudrescue.disks.probe import ProbeResult, RootFilesystem
    from cloudrescue.disks.session import DiskSession
    from cloudrescue.remote.local import LocalHost

    volume = "5a4e7d2c-1f0b-4c1e-9d5f-0123456789ab"
    image = RootFilesystem(fs("/dev/vdb1"), "Debian 12", "debian", True)
    boot_volume = RootFilesystem(
        fs("/dev/vdc1", disk="/dev/vdc", disks=("/dev/vdc",), serial=volume[:20]),
        "Debian 12",
        "debian",
        True,
    )
    probes = [ProbeResult(r.filesystem, r) for r in (image, boot_volume)]
    monkeypatch.setattr(DiskSession, "probe", lambda self, disk=None: probes)
    session = DiskSession(LocalHost())
    assert session.choose_root(volume_id=volume) is boot_volume
    with pytest.raises(SeveralRootsError, match="/dev/vdb1"):
        session.choose_root(volume_id="another-volume-id-entirely")
