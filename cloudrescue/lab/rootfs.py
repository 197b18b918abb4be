"""Root filesystems of the lab, built once with debootstrap and cached.

``<cache>/rootfs/<name>-<hash>/`` is a finished tree (built in a temporary directory and
renamed into place under an ``flock``, so concurrent labs and tests never build twice);
``<hash>`` is the hash of the recipe, so a changed recipe builds a new tree. Docs, man pages,
locales and apt caches are stripped. The rescue tree also becomes one ext4 image
(``<cache>/images/rescue-<hash>.img``) that every rescue system mounts read-only.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cloudrescue.lab import guest_files
from cloudrescue.lab.layout import cache_dir
from cloudrescue.lab.model import Family
from cloudrescue.lab.system import run

Progress = Callable[[str], None]

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
GUEST_PACKAGES = (
    "openssh-server",
    "sudo",
    "iproute2",
    "iptables",
    "nftables",
    "ufw",
    "ifupdown",
    "passwd",
    "grub2-common",
    "udev",
)
RESCUE_PACKAGES = (
    "openssh-server",
    "tmux",  # cloudrescue shell runs in it (a cut connection reattaches)
    "util-linux",
    "fdisk",
    "e2fsprogs",
    "xfsprogs",
    "lvm2",
    "btrfs-progs",
    "iptables",
    "nftables",
    "gdisk",
    "dosfstools",
    "procps",
    "coreutils",
    "sudo",
    "iproute2",
    "passwd",
    "mount",
    "iputils-ping",
)
STRIP = (
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "usr/share/lintian",
    "var/cache/apt",
    "var/lib/apt/lists",
)
RECIPE_VERSION = 1
RESCUE_LABEL = "cloudimg-rootfs"


def recipe_key(recipe: object) -> str:
    """Short hash of a recipe (anything JSON-serialisable)."""
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]


@contextmanager
def cache_lock(name: str) -> Iterator[None]:
    """Hold the machine-wide lock that guards building cache entry ``name``."""
    locks = cache_dir() / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    with open(locks / f"{name}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def cached(target: Path, build: Callable[[Path], None], progress: Progress, what: str) -> Path:
    """``target`` if it exists, else build it into a temporary path and rename it there."""
    if target.exists():
        return target
    with cache_lock(target.name):
        if target.exists():
            progress(f"{what}: built by another process meanwhile")
            return target
        partial = target.with_name(target.name + ".partial")
        _remove(partial)
        target.parent.mkdir(parents=True, exist_ok=True)
        progress(f"building {what} (once, then cached)")
        build(partial)
        os.rename(partial, target)
    return target


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _debootstrap(target: Path, packages: tuple[str, ...], progress: Progress) -> None:
    debs = cache_dir() / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    progress(f"debootstrap {SUITE} ({len(packages)} extra packages)")
    run(
        [
            "debootstrap",
            "--variant=minbase",
            f"--cache-dir={debs}",
            f"--include={','.join(packages)}",
            SUITE,
            str(target),
            MIRROR,
        ],
        timeout=1800,
    )
    for relative in STRIP:
        directory = target / relative
        if directory.is_dir():
            for child in directory.iterdir():
                _remove(child)
    for key in (target / "etc/ssh").glob("ssh_host_*"):
        key.unlink()  # generated at each boot (guest) or each rescue


def _base_recipe(packages: tuple[str, ...]) -> dict[str, object]:
    return {
        "v": RECIPE_VERSION,
        "suite": SUITE,
        "mirror": MIRROR,
        "packages": packages,
        "strip": STRIP,
    }


@dataclass(frozen=True)
class RootfsBuild:
    """A cached root filesystem tree and the key it was built from."""

    path: Path
    key: str


def guest_rootfs(family: Family, progress: Progress) -> RootfsBuild:
    """The guest tree of ``family`` (Debian packages, family layout and default user)."""
    base_key = recipe_key(_base_recipe(GUEST_PACKAGES))
    base = cached(
        cache_dir() / "rootfs" / f"guest-base-{base_key}",
        lambda partial: _debootstrap(partial, GUEST_PACKAGES, progress),
        progress,
        "guest root filesystem",
    )
    key = recipe_key({"base": base_key, "family": family, "files": guest_files.VERSION})

    def build(partial: Path) -> None:
        run(["cp", "-a", "--reflink=auto", str(base), str(partial)])
        guest_files.customise(partial, family)

    path = cached(
        cache_dir() / "rootfs" / f"guest-{family}-{key}", build, progress, f"{family} guest tree"
    )
    return RootfsBuild(path, key)


def rescue_image(progress: Progress) -> Path:
    """The read-only ext4 image of the rescue system (shared by every rescue)."""
    key = recipe_key({"rescue": _base_recipe(RESCUE_PACKAGES), "files": guest_files.VERSION})

    def build_tree(partial: Path) -> None:
        _debootstrap(partial, RESCUE_PACKAGES, progress)
        guest_files.customise_rescue(partial)

    tree = cached(
        cache_dir() / "rootfs" / f"rescue-{key}", build_tree, progress, "rescue root filesystem"
    )

    def build_image(partial: Path) -> None:
        used = int(run(["du", "-s", "--block-size=1M", str(tree)]).stdout.split()[0])
        progress("making the rescue disk image")
        run(
            [
                "mkfs.ext4",
                "-q",
                "-F",
                "-L",
                RESCUE_LABEL,
                "-d",
                str(tree),
                str(partial),
                f"{used * 3 // 2 + 64}M",
            ]
        )

    return cached(
        cache_dir() / "images" / f"rescue-{key}.img", build_image, progress, "rescue disk image"
    )
