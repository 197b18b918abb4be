"""free_disk_space on a real, completely full ext4 filesystem (loop device, like the lab's)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloudrescue.fixes import disk_space
from cloudrescue.fixes.disk_space import free_disk_space, parse_size

from .conftest import guest_on, tree_digest, write_tree

MIB = 1024 * 1024
JOURNAL = "var/log/journal/0123456789abcdef0123456789abcdef"
ARCHIVED = [
    f"{JOURNAL}/system@00000000000000000000000000000001-0000000000000001-000{n}000000000000.journal"
    for n in range(1, 5)
]


@pytest.fixture
def full_root(tmp_path: Path) -> Iterator[Path]:
    """A 64 MiB ext4 filesystem mounted on tmp, with journal, caches and logs, filled to 100%."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a filesystem")
    image, root = tmp_path / "disk.img", tmp_path / "root"
    with image.open("wb") as handle:
        handle.truncate(64 * MIB)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True)
    root.mkdir()
    subprocess.run(["mount", "-o", "loop", str(image), str(root)], check=True)
    try:
        write_tree(root, {"etc/os-release": "ID=debian\n", "var/log/syslog.2.gz": "x" * 50_000})
        for name in ARCHIVED:
            write_tree(root, {name: "j" * 3 * MIB})
        write_tree(root, {f"{JOURNAL}/system.journal": "j" * MIB})
        for index, name in enumerate(ARCHIVED):  # oldest first, as their names say
            os.utime(root / name, (1_000_000 + index, 1_000_000 + index))
        write_tree(
            root,
            {
                "var/cache/apt/archives/vim_9.0_amd64.deb": "d" * 2 * MIB,
                "var/cache/apt/archives/lock": "",
                "var/cache/dnf/baseos-1/packages/x.rpm": "r" * MIB,
                "var/log/syslog.1": "old\n" * 1000,
                "var/log/messages-20240101": "old\n" * 1000,
                "var/log/auth.log": "small live log\n",
            },
        )
        log = root / "var/log/app-debug.log"
        with log.open("wb") as handle:
            handle.write(b"line\n" * MIB)
            try:
                while True:
                    handle.write(b"z" * 65536)
                    handle.flush()
            except OSError:
                pass
        with log.open("ab") as handle:
            handle.write(b"")
        os.chown(log, 104, 4)
        log.chmod(0o640)
        yield root
    finally:
        subprocess.run(["umount", str(root)], check=False)


def test_full_root_gets_space_back(full_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = full_root
    log = root / "var/log/app-debug.log"
    size, tail = log.stat().st_size, log.read_bytes()[-MIB // 2 :]
    before = tree_digest(root)
    dry = free_disk_space(guest_on(root, dry_run=True),
        journal_max="4M", log_threshold=4 * MIB, keep_tail=MIB // 2,
    )  # fmt: skip
    assert tree_digest(root) == before and dry.freed == 0 and dry.estimated > size // 2
    assert dry.largest[0].path == "/" and any(d.path == "/var/log" for d in dry.largest)

    monkeypatch.setattr(disk_space, "rescue_has", lambda host, program: False)
    report = free_disk_space(guest_on(root),
        journal_max="4M", log_threshold=4 * MIB, keep_tail=MIB // 2,
    )  # fmt: skip
    assert report.free_before < MIB and report.freed > size - MIB
    assert log.read_bytes() == tail
    info = log.stat()
    assert (info.st_uid, info.st_gid, info.st_mode & 0o777) == (104, 4, 0o640)
    assert not (root / ARCHIVED[0]).exists() and not (root / ARCHIVED[1]).exists()
    assert (root / ARCHIVED[3]).exists() and (root / JOURNAL / "system.journal").exists()
    assert not list((root / "var/cache/apt/archives").glob("*.deb"))
    assert (root / "var/cache/apt/archives/lock").exists()
    assert not (root / "var/cache/dnf/baseos-1/packages/x.rpm").exists()
    assert (root / "var/cache/dnf/baseos-1/packages").is_dir()
    for rotated in ("syslog.1", "syslog.2.gz", "messages-20240101"):
        assert (root / "var/log" / rotated).stat().st_size == 0
    assert (root / "var/log/auth.log").read_text() == "small live log\n"
    kinds = {change.path: change.kind for change in report.changes}
    assert kinds["/var/log/app-debug.log"] == "modify" and kinds[f"/{ARCHIVED[0]}"] == "remove"

    again = free_disk_space(guest_on(root),
        journal_max="4M", log_threshold=4 * MIB, keep_tail=MIB // 2,
    )  # fmt: skip
    assert again.changes == []


def test_rescue_journalctl_vacuums_archived_files(full_root: Path) -> None:
    """The rescue's own journalctl (it reads the files: these fake ones count as empty)."""
    report = free_disk_space(guest_on(full_root), journal_max="7M"
    )
    removed = {change.path for change in report.changes if "vacuum" in change.detail}
    gone = {f"/{name}" for name in ARCHIVED if not (full_root / name).exists()}
    assert removed and removed == gone  # journalctl chooses; every deletion is reported
    assert (full_root / JOURNAL / "system.journal").exists()


def test_sizes() -> None:
    assert parse_size("100M") == 100 * MIB and parse_size("1g") == 1024 * MIB
    with pytest.raises(Exception, match="not a size"):
        parse_size("lots")


def test_sparse_and_binary_logs_are_kept_and_text_is_cut_on_a_line(tmp_path: Path) -> None:
    root = tmp_path / "guest"
    write_tree(root, {"etc/os-release": "ID=debian\n", "var/log/.keep": ""})
    lastlog = root / "var/log/lastlog"
    with lastlog.open("wb") as handle:  # 73 MB apparent, a few KiB on the disk
        handle.truncate(73 * MIB)
        handle.write(b"\1" * 100)
    wtmp = root / "var/log/wtmp"
    wtmp.write_bytes(b"\0\1\2\3" * (2 * MIB))  # 8 MiB of binary records
    sa = root / "var/log/sa/sa01"
    sa.parent.mkdir()
    sa.write_bytes(b"sysstat\0" * MIB)
    app = root / "var/log/app.log"
    app.write_bytes(b"".join(b"line %07d of the log\n" % n for n in range(400_000)))
    before = {path: path.read_bytes() for path in (lastlog, wtmp, sa)}
    report = free_disk_space(guest_on(root), log_threshold=4 * MIB, keep_tail=MIB)
    assert {path: path.read_bytes() for path in before} == before
    kept = app.read_bytes()
    assert MIB - 30 <= len(kept) <= MIB and kept.startswith(b"line ")
    assert kept.endswith(b"line 0399999 of the log\n")
    assert [change.path for change in report.changes] == ["/var/log/app.log"]
    assert free_disk_space(guest_on(root), log_threshold=4 * MIB, keep_tail=MIB).changes == []
