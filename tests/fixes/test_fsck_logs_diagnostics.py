"""fsck on real loop-attached filesystems, log collection, and the read-only diagnostics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloudrescue.errors import DiskError, InvalidInputError
from cloudrescue.fixes.collect_logs import collect_logs
from cloudrescue.fixes.diagnostics import disk_benchmark, parse_ping
from cloudrescue.fixes.fsck import check_filesystem
from cloudrescue.remote.local import LocalHost

from .conftest import guest_on, mounted_guest, tree_digest, write_tree

MIB = 1024 * 1024
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (loop devices, netns)")


def sh(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def loop_image(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A sparse image attached to a loop device: (image, device)."""
    image = tmp_path / "fs.img"
    with image.open("wb") as handle:
        handle.truncate(320 * MIB)
    loop = sh("losetup", "--find", "--show", str(image))
    try:
        yield image, loop
    finally:
        subprocess.run(["umount", loop], capture_output=True, check=False)
        subprocess.run(["losetup", "-d", loop], check=False)


@needs_root
def test_ext4_check_is_read_only_and_repair_fixes(
    tmp_path: Path, loop_image: tuple[Path, str]
) -> None:
    _, device = loop_image
    content = tmp_path / "content"
    write_tree(content, {"etc/fstab": "x\n", "data/file": "y" * 10000})
    sh("mkfs.ext4", "-q", "-F", "-d", str(content), device)
    host = LocalHost()
    assert check_filesystem(host, device, "ext4").clean
    sh("debugfs", "-w", "-R", "clri /data/file", device)
    found = check_filesystem(host, device, "ext4")
    assert not found.clean and found.commands == (("e2fsck", "-f", "-n", device),)
    assert found.advice and "repair" in found.advice
    assert not check_filesystem(host, device, "ext4").clean  # -n changed nothing
    fixed = check_filesystem(host, device, "ext4", repair=True)
    assert fixed.repaired and fixed.clean and fixed.commands[0][:3] == ("e2fsck", "-f", "-p")
    assert check_filesystem(host, device, "ext4").clean


@needs_root
def test_xfs_check_and_policies(tmp_path: Path, loop_image: tuple[Path, str]) -> None:
    _, device = loop_image
    sh("mkfs.xfs", "-q", "-f", device)
    host = LocalHost()
    report = check_filesystem(host, device, "xfs")
    assert report.clean and report.commands == (("xfs_repair", "-n", device),)
    clean = check_filesystem(host, device, "xfs", repair=True)  # nothing to repair
    assert clean.clean and not clean.repaired and clean.commands == report.commands
    sh("xfs_db", "-x", "-c", "sb 0", "-c", "write -d icount 7", device)
    assert not check_filesystem(host, device, "xfs").clean
    fixed = check_filesystem(host, device, "xfs", repair=True)
    assert fixed.repaired and fixed.commands[1:] == (("xfs_repair", device),)
    assert check_filesystem(host, device, "xfs").clean
    with pytest.raises(InvalidInputError):
        check_filesystem(host, device, "xfs", zero_log=True)
    with pytest.raises(InvalidInputError):
        check_filesystem(host, device, "btrfs", repair=True)
    mountpoint = tmp_path / "m"
    mountpoint.mkdir()
    sh("mount", device, str(mountpoint))
    with pytest.raises(DiskError, match="mounted"):
        check_filesystem(host, device, "xfs")


def test_collect_logs_bundle(tmp_path: Path) -> None:
    root = tmp_path / "g"
    write_tree(
        root,
        {
            "var/log/syslog": "boot ok\n",
            "var/log/nginx/error.log": "oops\n",
            "var/log/huge.log": "z" * 5000,
            "var/log/journal/0123/system.journal": "binary",
        },
    )
    before = tree_digest(root)
    target = tmp_path / "logs.tar.gz"
    bundle = collect_logs(guest_on(root), destination=target, max_file_size=4000
    )
    assert tree_digest(root) == before
    assert bundle.files == 3 and bundle.left_out == ("huge.log",)
    assert bundle.boots == () and bundle.raw_journal  # no journalctl reads a fake journal
    assert target.stat().st_mode & 0o777 == 0o600 and bundle.size == target.stat().st_size
    with tarfile.open(target) as outer:
        names = outer.getnames()
        assert "cloudrescue-summary.txt" in names and "var-log.tar" in names
        summary = outer.extractfile("cloudrescue-summary.txt")
        assert summary is not None and b"journal: not exported" in summary.read()
        inner_file = outer.extractfile("var-log.tar")
        assert inner_file is not None
        with tarfile.open(fileobj=inner_file) as inner:
            assert sorted(inner.getnames()) == [
                "journal/0123/system.journal",
                "nginx/error.log",
                "syslog",
            ]
    no_boots = collect_logs(guest_on(root),
        destination=target,
        boots=0,
        max_file_size=4000,
    )
    assert no_boots.files == 2 and not no_boots.raw_journal


@needs_root
def test_disk_benchmark_reads_and_writes_only_a_scratch_file(
    tmp_path: Path, loop_image: tuple[Path, str]
) -> None:
    _, device = loop_image
    sh("mkfs.ext4", "-q", "-F", device)
    root = tmp_path / "g"
    root.mkdir()
    sh("mount", device, str(root))
    before = tree_digest(root)
    with pytest.raises(InvalidInputError):
        disk_benchmark(LocalHost(), device, write=True)
    report = disk_benchmark(
        LocalHost(), device, write=True, mounted=mounted_guest(root), size_mb=16, samples=20
    )
    assert report.sequential_read_mb_s > 0 and report.random_read_iops > 0
    assert report.sequential_write_mb_s is not None and report.sequential_write_mb_s > 0
    assert len(report.lines()) == 3 and "IOPS" in report.lines()[1]
    assert tree_digest(root) == before


NETNS_SCRIPT = """
import json, sys
from cloudrescue.fixes.diagnostics import network_diagnostics
from cloudrescue.remote.local import LocalHost
report = network_diagnostics(LocalHost(), count=1)
print(json.dumps({"gateway": report.gateway, "problems": report.problems,
                  "names": [i.name for i in report.interfaces],
                  "addresses": [a for i in report.interfaces for a in i.addresses]}))
"""


@needs_root
def test_network_diagnostics_in_a_private_netns() -> None:
    name = f"crdiag{os.getpid()}"
    sh("ip", "netns", "add", name)
    try:
        run = ["ip", "netns", "exec", name]
        sh(*run, "ip", "link", "add", "diag0", "type", "veth", "peer", "name", "diag1")
        sh(*run, "ip", "link", "set", "diag0", "up")
        sh(*run, "ip", "link", "set", "diag1", "up")
        sh(*run, "ip", "addr", "add", "10.250.7.2/24", "dev", "diag0")
        sh(*run, "ip", "route", "add", "default", "via", "10.250.7.1")
        out = sh(*run, sys.executable, "-c", NETNS_SCRIPT)
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)
    report = json.loads(out)
    assert report["gateway"] == "10.250.7.1"
    assert "diag0" in report["names"] and "10.250.7.2/24" in report["addresses"]
    assert report["problems"] and any("gateway" in p for p in report["problems"])


def test_ping_summary() -> None:
    output = (
        "3 packets transmitted, 2 received, 33% packet loss, time 2003ms\n"
        "rtt min/avg/max/mdev = 0.041/0.052/0.063/0.011 ms\n"
    )
    assert parse_ping("10.0.0.1", output).received == 2
    assert parse_ping("10.0.0.1", output).average_ms == pytest.approx(0.052)
