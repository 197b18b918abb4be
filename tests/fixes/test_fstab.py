"""repair_fstab against this machine's real block devices (blkid), with a loop-attached disk."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloudrescue.fixes.common import MARKER
from cloudrescue.fixes.fstab import check_fstab, repair_fstab, with_options
from cloudrescue.guest import Guest

from .conftest import guest_fs, mounted_guest, tree_digest, write_tree

GONE = str(uuid.uuid4())
GONE_SWAP = str(uuid.uuid4())


def sh(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def attached_uuid(tmp_path: Path) -> Iterator[str]:
    """UUID of an ext4 filesystem on a loop device, attached but not mounted."""
    if os.geteuid() != 0:
        pytest.skip("needs root for a loop device")
    image = tmp_path / "data.img"
    with image.open("wb") as handle:
        handle.truncate(16 * 1024 * 1024)
    sh("mkfs.ext4", "-q", str(image))
    loop = sh("losetup", "--find", "--show", str(image))
    try:
        yield sh("blkid", "-p", "-s", "UUID", "-o", "value", loop)
    finally:
        subprocess.run(["losetup", "-d", loop], check=False)


def fstab_text(present: str, rescue_root: str) -> str:
    return (
        "# /etc/fstab: static file system information.\n"
        f"UUID={GONE}\t/\text4\terrors=remount-ro\t0 1\n"
        f"UUID={present} /srv/ok ext4 defaults 0 2\n"
        f"UUID={GONE}  /srv/data   ext4   defaults   0 2\n"
        "LABEL=gone /srv/label xfs\n"
        "/dev/vdc1 /srv/dev ext4 rw,noatime 0 2\n"
        f"UUID={GONE_SWAP} none swap sw 0 0\n"
        f"UUID={rescue_root} /srv/rescue ext4 defaults 0 2\n"
        "server:/export /mnt/nfs nfs defaults 0 0\n"
        "tmpfs /tmp tmpfs defaults 0 0\n"
        f"/dev/disk/by-uuid/{GONE} /boot ext4 defaults 0 2\n"
        "/dev/vdb15 /boot/efi vfat umask=0077 0 1\n"
    )


@pytest.mark.parametrize("family", ["debian", "rhel"])
def test_missing_devices_get_nofail_and_protected_lines_stay(
    tmp_path: Path, attached_uuid: str, family: str
) -> None:
    root = tmp_path / family
    rescue_root = sh("findmnt", "-n", "-o", "UUID", "/")
    os_release = "ID=debian\n" if family == "debian" else 'ID="rocky"\nID_LIKE="rhel"\n'
    write_tree(
        root, {"etc/fstab": fstab_text(attached_uuid, rescue_root), "etc/os-release": os_release}
    )
    mounted = mounted_guest(root, missing=("/dev/vdc1",), mounted=("/boot/efi",))
    findings = {f.entry.mountpoint: f.status for f in check_fstab(Guest(guest_fs(root), mounted))}
    assert findings == {
        "/": "protected-missing",
        "/srv/ok": "ok",
        "/srv/data": "missing",
        "/srv/label": "missing",
        "/srv/dev": "missing",
        "none": "missing",
        "/srv/rescue": "missing",  # only the rescue system's own disk has that UUID
        "/mnt/nfs": "network",
        "/tmp": "not-checked",
        "/boot": "protected-missing",
        "/boot/efi": "ok",
    }
    before = tree_digest(root)
    planned = repair_fstab(Guest(guest_fs(root, dry_run=True), mounted))
    assert tree_digest(root) == before and "+/dev/vdc1" in planned[0].diff

    guest = guest_fs(root)
    repair_fstab(Guest(guest, mounted))
    lines = (root / "etc/fstab").read_text().splitlines()
    assert lines[1] == f"UUID={GONE}\t/\text4\terrors=remount-ro\t0 1"
    assert lines[2] == f"UUID={attached_uuid} /srv/ok ext4 defaults 0 2"
    nofail = "nofail,x-systemd.device-timeout=10s"
    assert lines[3] == f"UUID={GONE}  /srv/data   ext4   defaults,{nofail}   0 2"
    assert lines[4] == f"LABEL=gone /srv/label xfs\t{nofail}"
    assert lines[5] == f"/dev/vdc1 /srv/dev ext4 rw,noatime,{nofail} 0 2"
    assert lines[6] == f"UUID={GONE_SWAP} none swap sw,{nofail} 0 0"
    assert lines[8] == "server:/export /mnt/nfs nfs defaults,_netdev,nofail 0 0"
    assert lines[9] == "tmpfs /tmp tmpfs defaults 0 0"
    assert lines[10].startswith("/dev/disk/by-uuid/") and lines[10].endswith("defaults 0 2")
    assert repair_fstab(Guest(guest, mounted)) == []


def test_comment_mode(tmp_path: Path, attached_uuid: str) -> None:
    root = tmp_path / "g"
    write_tree(root, {"etc/fstab": f"UUID={GONE} /srv/data ext4 defaults 0 2\n"})
    guest = guest_fs(root)
    repair_fstab(Guest(guest, mounted_guest(root)), mode="comment")
    text = (root / "etc/fstab").read_text()
    assert text.startswith(f"{MARKER} device not found (UUID={GONE} is not attached): UUID=")
    assert repair_fstab(Guest(guest, mounted_guest(root)), mode="comment") == []


def test_option_field_editing() -> None:
    assert (
        with_options("a /b ext4 defaults 0 0\n", ("nofail",)) == "a /b ext4 defaults,nofail 0 0\n"
    )
    assert with_options("a /b ext4 nofail 0 0", ("nofail",)) == "a /b ext4 nofail 0 0"
    assert with_options("  a\t/b\text4\n", ("x",)) == "  a\t/b\text4\tx\n"
