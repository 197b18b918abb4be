"""The lab's loop devices as sysfs shows them: what is attached, and strays stacked on ours."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloudrescue.lab import loopdev

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: loop devices")


def losetup(*argv: str) -> str:
    return subprocess.run(["losetup", *argv], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def loop(tmp_path: Path) -> Iterator[str]:
    """A loop device on a 4 MiB file (detached afterwards, with anything stacked on it)."""
    image = tmp_path / "disk.img"
    image.write_bytes(b"\0" * (4 << 20))
    name = os.path.basename(losetup("--find", "--show", str(image)).strip())
    try:
        yield name
    finally:
        loopdev.detach_strays([name])
        loopdev.detach(name)


def test_info_reads_the_backing_file_and_offset(loop: str, tmp_path: Path) -> None:
    found = loopdev.info(loop)
    assert found is not None
    assert (found.name, found.backing, found.offset) == (loop, str(tmp_path / "disk.img"), 0)
    assert loopdev.info("loop-none") is None


def test_strays_stacked_on_a_device_are_detached_and_it_stays(loop: str) -> None:
    stray = os.path.basename(losetup("--find", "--show", "--offset", "4096", f"/dev/{loop}"))
    stray = stray.strip()
    assert (found := loopdev.info(stray)) is not None
    assert (found.backing, found.offset) == (f"/dev/{loop}", 4096)
    loopdev.detach_strays(["loop-other"])  # not stacked on that one: left alone
    assert loopdev.info(stray) is not None
    loopdev.detach_strays([loop])
    assert loopdev.info(stray) is None
    assert loopdev.info(loop) is not None
