"""The sshd configuration reader against a real sshd: for every case of
``test_sshd_settings.CASES`` that sshd accepts, the lab Debian guest's own ``sshd -T`` (chrooted
into a copy-on-write overlay of the cached guest tree) answers what the reader answers.

Needs root (overlay mount and chroot); the guest tree is built with debootstrap when the
cache lacks it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloudrescue.fixes.sshd_settings import Connection, canonical
from cloudrescue.lab.rootfs import guest_rootfs

from .test_sshd_settings import CASES, Case

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (overlay mount and chroot)")

# ``sshd -T`` prints these one value a line; every other keyword on one line.
ONE_PER_LINE = frozenset({"port", "acceptenv", "allowusers", "denyusers", "allowgroups"})


@pytest.fixture(scope="module")
def sshd_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The lab's Debian guest tree, writable, with host keys and no sshd configuration."""
    lower = guest_rootfs("debian", lambda message: None).path
    base = tmp_path_factory.mktemp("sshd-guest")
    upper, work, merged = base / "upper", base / "work", base / "guest"
    for directory in (upper, work, merged):
        directory.mkdir()
    options = f"lowerdir={lower},upperdir={upper},workdir={work}"
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, str(merged)], check=True)
    try:
        subprocess.run(["chroot", str(merged), "ssh-keygen", "-A"], check=True, capture_output=True)
        (merged / "run/sshd").mkdir(parents=True, exist_ok=True)
        shutil.rmtree(merged / "etc/ssh/sshd_config.d")
        yield merged
    finally:
        subprocess.run(["umount", "--lazy", str(merged)], check=False)


def sshd_says(root: Path, connection: Connection | None) -> dict[str, list[str]]:
    """``sshd -T`` (``-C`` for a connection) of the guest: keyword -> its printed values."""
    argv = ["chroot", str(root), "/usr/sbin/sshd", "-T", "-f", "/etc/ssh/sshd_config"]
    if connection is not None:
        fields = {
            "user": connection.user,
            "host": connection.host,
            "addr": connection.address,
            "laddr": connection.local_address,
            "lport": None if connection.local_port is None else str(connection.local_port),
        }
        argv += ["-C", ",".join(f"{key}={value}" for key, value in fields.items() if value)]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    said: dict[str, list[str]] = {}
    for line in result.stdout.splitlines():
        keyword, _, value = line.partition(" ")
        said.setdefault(keyword, []).append(value)
    return said


@pytest.mark.parametrize("case", [c for c in CASES if c.sshd_accepts], ids=lambda c: c.id)
def test_the_guest_sshd_agrees(sshd_root: Path, case: Case) -> None:
    written = [sshd_root / path.lstrip("/") for path in case.files]
    made = [p.parent for p in written if not p.parent.exists()]
    try:
        for path, text in zip(written, case.files.values(), strict=True):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        for check in case.checks:
            if not check.expected:
                continue  # unset: sshd prints its default
            key = canonical(check.keyword)
            said = sshd_says(sshd_root, check.connection)[key]
            wanted = list(check.expected) if key in ONE_PER_LINE else [" ".join(check.expected)]
            assert said == wanted, check
    finally:
        for path in written:
            path.unlink(missing_ok=True)
        for directory in sorted(set(made), key=lambda p: len(p.parts), reverse=True):
            shutil.rmtree(directory, ignore_errors=True)
