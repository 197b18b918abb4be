"""The lab's ``hostile`` break scenario (what test_lab_rescue.py plants on a lab disk) edits
the guest root-anchored, like every scenario, and can be applied twice."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cloudrescue.lab.scenarios import PLANTED_SSHD, Target, get

pytestmark = pytest.mark.root  # the planted links are given to the guest's uid 1000


def test_the_hostile_scenario_stays_in_the_guest_and_can_be_applied_twice(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (links chowned to uid 1000)")
    root = tmp_path / "guest"
    for directory in ("etc/ssh", "home/debian/.ssh", "root/.ssh", "usr/sbin"):
        (root / directory).mkdir(parents=True)
    (root / "etc/passwd").write_text("debian:x:1000:1000::/home/debian:/bin/sh\n")
    (root / "etc/ssh/sshd_config").write_text("Port 22\n")
    (root / "usr/sbin/sshd").write_bytes(b"\x7fELF the real sshd")
    (tmp_path / "scratch").mkdir()
    target = Target(root, "debian", "debian", tmp_path / "scratch")
    for _ in range(2):
        get("hostile").apply(target)
    assert os.readlink(root / "home/debian/.ssh/authorized_keys") == "/etc/shadow"
    assert os.readlink(root / "root/.ssh") == "../" * 12 + "etc/ssh"
    assert (root / "etc/ssh/sshd_config").read_text() == "Port 22\n"  # not the link's target
    assert (root / "usr/sbin/sshd.real").read_bytes() == b"\x7fELF the real sshd"
    assert (root / "usr/sbin/sshd").read_text().startswith("#!/bin/sh\n")
    assert "exec /usr/sbin/sshd.real" in PLANTED_SSHD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["guest", "scratch"]
