"""A planted guest binary, run as the fixes run the guest's own tools: it must not reach the
rescue system (this machine plays the rescue), and it must have no capability left."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from cloudrescue.fixes.sandbox import cannot_run, run_in_guest
from cloudrescue.fixes.sshd_config import run_sshd_check

from .conftest import guest_fs

PLANTED = """#!/bin/sh
# What a binary planted in a compromised guest tries when cloudrescue runs it.
canary="$1"
for target in /proc/1/root /proc/*/root /proc/1/cwd/.. /..; do
    echo owned > "$target$canary/from-proc" 2>/dev/null && echo "WROTE via $target"
done
mkdir -p /jail && chroot /jail /bin/true 2>/dev/null && echo CHROOT-ESCAPE
mount -t tmpfs owned /mnt 2>/dev/null && echo MOUNTED
umount -l /proc 2>/dev/null && echo UNMOUNTED
for lib in /dev/.cloudrescue-sandbox/*; do
    echo owned >> "$lib" 2>/dev/null && echo "WROTE $lib"
done
mknod /dev/sneaky b 8 0 2>/dev/null && echo MKNOD
grep '^CapEff' /proc/self/status
echo "uid $(id -u)"
ls /dev
ip link 2>/dev/null | grep -c 'state UP' || true
"""


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_planted_binary_cannot_act_on_the_rescue(chroot_guest: Path, tmp_path: Path) -> None:
    canary = tmp_path / "rescue-side"
    canary.mkdir()
    planted = chroot_guest / "usr/local/bin/planted"
    planted.write_text(PLANTED)
    planted.chmod(0o755)
    loader = Path("/lib64/ld-linux-x86-64.so.2").resolve()
    libc = Path("/lib/x86_64-linux-gnu/libc.so.6").resolve()
    before = {path: digest(path) for path in (loader, libc)}
    result = run_in_guest(guest_fs(chroot_guest), ["/usr/local/bin/planted", str(canary)])
    output = result.stdout + result.stderr
    assert result.exit_code == 0, output
    assert list(canary.iterdir()) == []
    for forbidden in ("WROTE", "CHROOT-ESCAPE", "MOUNTED", "UNMOUNTED", "MKNOD"):
        assert forbidden not in output, output
    assert "CapEff:\t0000000000000000" in output
    assert "uid 0" in output  # the guest's root-owned files stay its own
    assert {path: digest(path) for path in before} == before
    shown_devices = set(output.split("uid 0", 1)[1].split())
    assert {"null", "zero", "urandom"} <= shown_devices
    assert not {"sda", "vda", "loop0", "mem", "kmsg"} & shown_devices


def test_the_guests_own_sshd_still_judges_its_config(chroot_guest: Path) -> None:
    (chroot_guest / "etc/ssh/sshd_config.d/bad.conf").write_text("NoSuchOption yes\n")
    check = run_sshd_check(guest_fs(chroot_guest))
    assert check.ran, check.output
    assert [error.path for error in check.errors] == ["/etc/ssh/sshd_config.d/bad.conf"]


def test_a_guest_whose_dev_is_a_symlink_is_not_run(chroot_guest: Path) -> None:
    dev = chroot_guest / "dev"
    shutil.rmtree(dev)
    os.symlink("/", dev)
    result = run_in_guest(guest_fs(chroot_guest), ["/bin/true"])
    assert cannot_run(result)
    assert "the guest's /dev is a symlink" in result.stderr


@pytest.mark.parametrize("chroot_guest", ["debian"], indirect=True)
def test_a_missing_program_cannot_run(chroot_guest: Path) -> None:
    result = run_in_guest(guest_fs(chroot_guest), ["/usr/sbin/no-such-tool"])
    assert cannot_run(result) and result.argv == ("/usr/sbin/no-such-tool",)
