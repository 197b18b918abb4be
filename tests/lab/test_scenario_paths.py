"""The lab's break scenarios edit a guest tree root-anchored: a guest link never sends a
write onto this machine (the lab runs as root here)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cloudrescue.lab.guest_files import anchored, write
from cloudrescue.lab.scenarios import Target, get


def guest_tree(root: Path) -> Path:
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_text("debian:x:1000:1000::/home/debian:/bin/sh\n")
    (root / "home/debian").mkdir(parents=True)
    return root


def test_links_are_followed_inside_the_guest_root(tmp_path: Path) -> None:
    root = guest_tree(tmp_path / "guest")
    os.symlink("/etc", root / "home/debian/etc-link")
    os.symlink("../../../../../../etc", root / "home/debian/up")
    assert anchored(root, "/home/debian/etc-link/passwd") == root / "etc/passwd"
    assert anchored(root, "/home/debian/up/passwd") == root / "etc/passwd"
    assert anchored(root, "/../../etc/passwd") == root / "etc/passwd"


@pytest.mark.parametrize("scenario", ["lost-key", "bad-perms"])
def test_a_guest_ssh_dir_pointing_at_this_machine_stays_in_the_guest(
    tmp_path: Path, scenario: str
) -> None:
    root = guest_tree(tmp_path / "guest")
    outside = tmp_path / "this-machine"
    outside.mkdir(mode=0o700)
    os.symlink(str(outside), root / "home/debian/.ssh")  # absolute, as the guest wrote it
    (root / str(outside).lstrip("/")).mkdir(parents=True)  # the same path inside the guest
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    get(scenario).apply(Target(root, "debian", "debian", scratch))
    assert list(outside.iterdir()) == [] and (outside.stat().st_mode & 0o777) == 0o700
    write(root, "/home/debian/.ssh/extra", "x\n")
    assert list(outside.iterdir()) == []
    assert (root / str(outside).lstrip("/") / "extra").read_text() == "x\n"
