"""Bring the guest's logs home: the last boots' journal and ``/var/log``, as one tarball.

Everything is read on the rescue system (its ``journalctl --directory`` on the guest's
journal, its ``tar``), packed in a private temporary directory there, fetched with
``Host.read_file`` (SFTP over SSH) and written locally with mode 0600; the temporary directory
is removed. Nothing on the guest changes. Log files above ``max_file_size`` are left out and
listed (their tail is usually in the journal). When the rescue system cannot export the
journal (no ``journalctl``, or one that reads no boot from it: a newer journal format, a
damaged file), the journal's files go into the tarball as they are, to read at home with
``journalctl --directory``.
"""

from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path

from cloudrescue.disks.commands import run_tool
from cloudrescue.fixes.common import rescue_has
from cloudrescue.guest import Guest
from cloudrescue.guestfs import GuestFS
from cloudrescue.remote.base import Host

JOURNAL_DIR = "/var/log/journal"
LOG_DIR = "/var/log"
MIB = 1024 * 1024
SUMMARY = "cloudrescue-summary.txt"
RAW_JOURNAL_NOTE = (
    "journal: not exported (the rescue system's journalctl is missing or read no boot from "
    "it): its files are in var-log.tar under journal/, for journalctl --directory\n"
)
_BOOT_LINE = re.compile(r"^\s*(-?\d+)\s+([0-9a-f]{32})\s")


@dataclass(frozen=True)
class LogBundle:
    """The tarball written locally and what went into it."""

    path: Path
    size: int
    boots: tuple[str, ...]
    files: int
    left_out: tuple[str, ...]
    raw_journal: bool = False


def journal_boots(host: Host, journal: str) -> list[str]:
    """Boot ids in the journal directory ``journal`` (on the host), oldest first."""
    argv = ["journalctl", f"--directory={journal}", "--list-boots", "--no-pager"]
    result = run_tool(host, argv, check=False)
    return [m.group(2) for line in result.stdout.splitlines() if (m := _BOOT_LINE.match(line))]


def _journal_exports(host: Host, files: GuestFS, scratch: str, boots: int) -> list[str]:
    journal = files.resolve(JOURNAL_DIR)
    info = host.lstat(journal.host)
    if boots <= 0 or info is None or not info.is_dir or not rescue_has(host, "journalctl"):
        return []
    names = []
    for boot in journal_boots(host, journal.host)[-boots:]:
        argv = ["journalctl", f"--directory={journal.host}", "-b", boot, "--no-pager",
                "-o", "short-iso"]  # fmt: skip
        text = run_tool(host, argv, check=False, timeout=600).stdout
        name = f"journal-{boot}.txt"
        host.write_file(posixpath.join(scratch, name), text.encode(), mode=0o600)
        names.append(name)
    return names


def _log_files(
    host: Host, log_dir: str, max_size: int, *, journal: bool
) -> tuple[list[str], list[str]]:
    skip = [] if journal else ["-not", "-path", f"{log_dir}/journal/*"]
    argv = ["find", log_dir, "-xdev", "-type", "f", *skip, "-printf", r"%s\t%P\0"]
    kept: list[str] = []
    left: list[str] = []
    for record in run_tool(host, argv, check=False).stdout.split("\0"):
        size, _, name = record.partition("\t")
        if size.isdigit() and name:
            (kept if int(size) <= max_size else left).append(name)
    return sorted(kept), sorted(left)


def collect_logs(
    guest: Guest,
    *,
    destination: Path,
    boots: int = 2,
    max_file_size: int = 64 * MIB,
) -> LogBundle:
    """Write ``destination`` (a .tar.gz): the last ``boots`` boots' journal as text (or the
    journal's files, when it cannot be exported here) and the guest's ``/var/log`` files up
    to ``max_file_size`` each."""
    files, host = guest.files, guest.host
    scratch = run_tool(host, ["mktemp", "-d", "-t", "cloudrescue-logs.XXXXXXXX"]).stdout.strip()
    try:
        exports = _journal_exports(host, files, scratch, boots)
        log_dir = files.resolve(LOG_DIR).host
        raw = boots > 0 and not exports
        log_files, left_out = _log_files(host, log_dir, max_file_size, journal=raw)
        raw_journal = any(name.startswith("journal/") for name in log_files)
        summary = "".join(
            [f"guest root: {guest.mount.filesystem.describe()}\n"]
            + [f"journal export: {name}\n" for name in exports]
            + [RAW_JOURNAL_NOTE] * raw_journal
            + [f"left out (over {max_file_size} bytes): /var/log/{name}\n" for name in left_out]
        )
        host.write_file(f"{scratch}/{SUMMARY}", summary.encode(), mode=0o600)
        members = [SUMMARY, *exports]
        if log_files:
            listing = b"".join(name.encode() + b"\0" for name in log_files)
            tar = ["tar", "-C", log_dir, "--null", "-T", "-", "-cf", f"{scratch}/var-log.tar"]
            host.run(tar, stdin=listing, timeout=1800)
            members.append("var-log.tar")
        bundle = f"{scratch}/logs.tar.gz"
        host.run(["tar", "-C", scratch, "-czf", bundle, "--", *members], timeout=1800)
        data = host.read_file(bundle)
    finally:
        run_tool(host, ["rm", "-rf", "--", scratch], check=False)
    fd = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return LogBundle(
        destination,
        len(data),
        tuple(name[len("journal-") : -len(".txt")] for name in exports),
        len(log_files),
        tuple(left_out),
        raw_journal,
    )
