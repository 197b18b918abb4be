"""Guest-shaped trees for the fix tests, and real chrootable guests from the lab's cache.

``guest_tree`` writes a small tree under tmp; ``chroot_guest`` overlays the lab's cached
debootstrapped guest tree (``/var/cache/cloudrescue/rootfs/guest-<family>-*``, with sshd, sudo,
nft, ufw) with an upper layer under tmp, so the guest's own tools run chrooted without
copying 150 MB; the tree is built (debootstrap) when the cache lacks it.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloudrescue.lab.rootfs import guest_rootfs
from tests.guests import guest_fs, guest_on, mounted_guest

__all__ = ["guest_fs", "guest_on", "mounted_guest", "tree_digest", "write_tree"]


def write_tree(root: Path, files: dict[str, str], mode: int | None = None) -> None:
    """Create ``files`` (relative path -> text) under ``root``."""
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        if mode is not None:
            path.chmod(mode)


def tree_digest(root: Path) -> dict[str, str]:
    """Every entry under ``root``: content hash (or link target), mode and owner."""
    digest = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        if path.is_symlink():
            what = "->" + os.readlink(path)
        elif path.is_file():
            what = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            what = "dir"
        digest[str(path.relative_to(root))] = f"{what} {info.st_mode:o} {info.st_uid}:{info.st_gid}"
    return digest


@pytest.fixture(params=["debian", "rhel"])
def chroot_guest(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    """A writable, chrootable copy-on-write guest tree of each lab family."""
    family = str(request.param)
    if os.geteuid() != 0:
        pytest.skip("needs root (overlay mount and chroot)")
    lower = guest_rootfs(family, lambda message: None).path  # built once, then cached
    upper, work, merged = tmp_path / "upper", tmp_path / "work", tmp_path / "guest"
    for directory in (upper, work, merged):
        directory.mkdir()
    options = f"lowerdir={lower},upperdir={upper},workdir={work}"
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, str(merged)], check=True)
    try:
        yield merged
    finally:
        subprocess.run(["umount", "--lazy", str(merged)], check=False)
