"""cloud-init reset, SELinux relabel and the serial console on guest-shaped trees."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloudrescue.errors import FixFailedError
from cloudrescue.fixes.cloud_init import reset_cloud_init
from cloudrescue.fixes.selinux import relabel_selinux
from cloudrescue.fixes.serial_console import enable_serial_console, with_serial_console
from cloudrescue.guest import Guest

from .conftest import guest_fs, guest_on, mounted_guest, tree_digest, write_tree


def test_cloud_init_reset_keeps_seed_and_logs(tmp_path: Path) -> None:
    root = tmp_path / "g"
    write_tree(
        root,
        {
            "var/lib/cloud/instances/i-1/user-data.txt": "#cloud-config\n",
            "var/lib/cloud/data/instance-id": "i-1\n",
            "var/lib/cloud/sem/config_scripts_per_once.once": "",
            "var/lib/cloud/seed/nocloud/meta-data": "instance-id: i-1\n",
            "var/log/cloud-init.log": "log\n",
            "etc/cloud/cloud-init.disabled": "",
        },
    )
    (root / "var/lib/cloud/instance").symlink_to("/var/lib/cloud/instances/i-1")
    before = tree_digest(root)
    assert reset_cloud_init(guest_on(root, dry_run=True))
    assert tree_digest(root) == before
    guest = guest_fs(root)
    changes = reset_cloud_init(Guest(guest, mounted_guest(root)))
    assert sorted(p.name for p in (root / "var/lib/cloud").iterdir()) == [
        "data.cloudrescue-T",
        "instance.cloudrescue-T",
        "instances.cloudrescue-T",
        "seed",
        "sem.cloudrescue-T",
    ]
    assert (root / "var/log/cloud-init.log").exists()
    assert not (root / "etc/cloud/cloud-init.disabled").exists()
    assert reset_cloud_init(Guest(guest, mounted_guest(root))) == []
    assert len(guest.rollback().restored) == len(changes)
    assert (root / "var/lib/cloud/instance").is_symlink()
    assert (root / "var/lib/cloud/data/instance-id").read_text() == "i-1\n"


def test_selinux_relabel_and_permissive(tmp_path: Path) -> None:
    root = tmp_path / "g"
    write_tree(root, {"etc/selinux/config": "# x\nSELINUX=enforcing\nSELINUXTYPE=targeted\n"})
    before = tree_digest(root)
    relabel_selinux(guest_on(root, dry_run=True), permissive=True)
    assert tree_digest(root) == before
    guest = guest_fs(root)
    relabel_selinux(Guest(guest, mounted_guest(root)), permissive=True)
    assert (root / ".autorelabel").exists()
    assert "SELINUX=permissive\nSELINUXTYPE=targeted" in (root / "etc/selinux/config").read_text()
    assert relabel_selinux(Guest(guest, mounted_guest(root)), permissive=True) == []
    debian = tmp_path / "d"
    debian.mkdir()
    assert relabel_selinux(guest_on(debian)) == []


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (
            'GRUB_CMDLINE_LINUX_DEFAULT="quiet"\nGRUB_CMDLINE_LINUX="console=tty1 net.ifnames=0"\n',
            'GRUB_CMDLINE_LINUX_DEFAULT="quiet"\n'
            'GRUB_CMDLINE_LINUX="net.ifnames=0 console=tty0 console=ttyS0,115200n8"\n',
        ),
        (
            "GRUB_TIMEOUT=5\n",
            'GRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX="console=tty0 console=ttyS0,115200n8"\n',
        ),
        ("GRUB_CMDLINE_LINUX=''\n", 'GRUB_CMDLINE_LINUX="console=tty0 console=ttyS0,115200n8"\n'),
    ],
)
def test_grub_cmdline(before: str, after: str) -> None:
    assert with_serial_console(before) == after
    assert with_serial_console(after) == after


def test_serial_console_needs_grub_tools(tmp_path: Path) -> None:
    root = tmp_path / "g"
    write_tree(root, {"etc/default/grub": 'GRUB_CMDLINE_LINUX=""\n'})
    for dry_run in (True, False):
        with pytest.raises(FixFailedError, match="neither update-grub nor grub-mkconfig"):
            enable_serial_console(guest_on(root, dry_run=dry_run, binds=True)
            )
    assert (root / "etc/default/grub").read_text() == 'GRUB_CMDLINE_LINUX=""\n'
    write_tree(root, {"usr/sbin/update-grub": "#!/bin/sh\n"})
    dry = enable_serial_console(guest_on(root, dry_run=True))
    assert "+GRUB_CMDLINE_LINUX" in dry[0].diff
    assert dry[1].detail == "regenerated /boot/grub/grub.cfg (/usr/sbin/update-grub)"
    with pytest.raises(FixFailedError, match="chroot binds"):
        enable_serial_console(guest_on(root))
    assert (root / "etc/default/grub").read_text() == 'GRUB_CMDLINE_LINUX=""\n'
