"""Free space on a full guest root: journal, package caches and logs, nothing else.

Reports the largest directories (``du -x`` of the mounted root) and the free bytes before and
after (``df``). Frees, in this order: archived journal files beyond ``journal_max`` (the
rescue's ``journalctl --vacuum-size``, or the oldest archived files when it has none), the
package caches (``/var/cache/apt/archives/*.deb``, ``/var/cache/dnf``, ``/var/cache/yum``),
rotated logs in ``/var/log`` (emptied) and live logs above ``log_threshold`` (cut down to
their last ``keep_tail`` bytes, same file, same owner and mode). All commands run on the
rescue system on paths resolved by ``GuestFS``.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field

from cloudrescue.disks.commands import run_tool
from cloudrescue.errors import InvalidInputError
from cloudrescue.fixes.common import delete_file, rescue_has
from cloudrescue.guest import Guest
from cloudrescue.guestfs import Change, GuestFS
from cloudrescue.remote.base import Host

MIB = 1024 * 1024
TOP_DIRECTORIES = 15
DU_DEPTH = 4
JOURNAL_DIR = "/var/log/journal"
CACHE_TREES = ("/var/cache/dnf", "/var/cache/yum")
APT_ARCHIVES = ("/var/cache/apt/archives", "/var/cache/apt/archives/partial")
UNITS = {"": 1, "K": 1024, "M": MIB, "G": 1024 * MIB, "T": 1024 * 1024 * MIB}
_SIZE = re.compile(r"(\d+)([KMGT]?)")
_ARCHIVED_JOURNAL = re.compile(r".+@.+\.journal~?$|.+\.journal~$")
_ROTATED_LOG = re.compile(r".+(\.\d+|-\d{8})(\.(gz|xz|bz2|zst|lz4))?$|.+\.(gz|xz|bz2|zst|lz4)$")


@dataclass(frozen=True)
class DirectoryUsage:
    """Bytes used by one guest directory (on the root filesystem only)."""

    path: str
    size: int


@dataclass
class DiskSpaceReport:
    """What freeing space found and did; ``estimated`` is the size of what was (or would be)
    deleted or cut, ``freed`` what ``df`` saw."""

    largest: list[DirectoryUsage]
    free_before: int
    free_after: int
    estimated: int = 0
    changes: list[Change] = field(default_factory=list)

    @property
    def freed(self) -> int:
        """Bytes freed according to ``df`` (0 in a dry run: see ``estimated``)."""
        return self.free_after - self.free_before


def parse_size(text: str) -> int:
    """``100M``-style size in bytes (K, M, G, T are powers of 1024)."""
    match = _SIZE.fullmatch(text.strip().upper())
    if match is None:
        raise InvalidInputError(f"not a size: {text!r} (use e.g. 100M or 1G)")
    return int(match.group(1)) * UNITS[match.group(2)]


def free_bytes(host: Host, path: str) -> int:
    """Bytes available to unprivileged users on the filesystem of ``path`` (``df``)."""
    result = run_tool(host, ["df", "-B1", "--output=avail", path]).stdout.split()
    return int(result[-1])


def largest_directories(
    host: Host, root: str, count: int = TOP_DIRECTORIES
) -> list[DirectoryUsage]:
    """The ``count`` largest directories of the guest root filesystem (``du -x``)."""
    result = run_tool(host, ["du", "-x", "-B1", f"--max-depth={DU_DEPTH}", root], check=False)
    usage = []
    for line in result.stdout.splitlines():
        size, _, path = line.partition("\t")
        if size.isdigit() and path:
            guest_path = "/" + posixpath.relpath(path, root).lstrip(".").lstrip("/")
            usage.append(DirectoryUsage(guest_path.rstrip("/") or "/", int(size)))
    return sorted(usage, key=lambda item: -item.size)[:count]


def _files(host: Host, directory: str) -> list[tuple[str, int, float]]:
    """(host path, size, mtime) of the regular files under ``directory`` (one filesystem)."""
    result = run_tool(
        host, ["find", directory, "-xdev", "-type", "f", "-printf", r"%s\t%T@\t%p\0"], check=False
    )
    found = []
    for record in result.stdout.split("\0"):
        size, _, rest = record.partition("\t")
        mtime, _, path = rest.partition("\t")
        if size.isdigit() and path:
            found.append((path, int(size), float(mtime or 0)))
    return found


def _guest_path(files: GuestFS, host_path: str) -> str:
    return "/" + posixpath.relpath(host_path, files.root)


@dataclass
class _Work:
    files: GuestFS
    host: Host
    changes: list[Change] = field(default_factory=list)
    estimated: int = 0


def _journal(work: _Work, journal_max: str) -> None:
    files = work.files
    target = files.resolve(JOURNAL_DIR)
    info = files.host.lstat(target.host)
    if info is None or not info.is_dir:
        return
    limit = parse_size(journal_max)
    entries = _files(work.host, target.host)
    total = sum(size for _, size, _ in entries)
    archived = sorted(
        (f for f in entries if _ARCHIVED_JOURNAL.fullmatch(posixpath.basename(f[0]))),
        key=lambda f: f[2],
    )
    doomed: list[tuple[str, int, float]] = []
    for entry in archived:
        if total <= limit:
            break
        doomed.append(entry)
        total -= entry[1]
    if not doomed:
        return
    work.estimated += sum(size for _, size, _ in doomed)
    if files.dry_run or not rescue_has(work.host, "journalctl"):
        for path, _, _ in doomed:
            work.changes += delete_file(files, _guest_path(files, path), why="old journal")
        return
    argv = ["journalctl", f"--directory={target.host}", f"--vacuum-size={journal_max}"]
    run_tool(work.host, argv, timeout=600)
    left = {path for path, _, _ in _files(work.host, target.host)}
    for path, size, _ in entries:
        if path not in left:
            where = _guest_path(files, path)
            detail = f"journalctl --vacuum-size={journal_max} deleted {where} ({size} bytes)"
            work.changes.append(Change("remove", where, detail))


def _package_caches(work: _Work) -> None:
    files = work.files
    for directory in APT_ARCHIVES:
        for name in files.listdir(directory):
            if name.endswith(".deb"):
                path = f"{directory}/{name}"
                info = files.stat(path)
                work.estimated += info.size if info is not None else 0
                work.changes += delete_file(files, path, why="cached package")
    for tree in CACHE_TREES:
        target = files.resolve(tree)
        info = files.host.lstat(target.host)
        if info is None or not info.is_dir:
            continue
        entries = _files(work.host, target.host)
        if not entries:
            continue
        size = sum(entry[1] for entry in entries)
        work.estimated += size
        detail = f"deleted the {len(entries)} files ({size} bytes) of the package cache {tree}"
        if not files.dry_run:
            run_tool(work.host, ["find", target.host, "-xdev", "-type", "f", "-delete"])
        work.changes.append(Change("remove", target.guest, detail))


def _cut_to_tail(work: _Work, path: str, size: int, keep: int) -> None:
    host = work.host
    scratch = run_tool(host, ["mktemp", "-t", "cloudrescue-tail.XXXXXXXX"]).stdout.strip()
    try:
        skip = str(size - keep)
        run_tool(host, ["dd", f"if={path}", f"of={scratch}", "bs=64K", "iflag=skip_bytes",
                        f"skip={skip}", "status=none"])  # fmt: skip
        run_tool(host, ["truncate", "-s", "0", path])
        run_tool(host, ["dd", f"if={scratch}", f"of={path}", "bs=64K", "conv=notrunc",
                        "status=none"])  # fmt: skip
    finally:
        run_tool(host, ["rm", "-f", "--", scratch], check=False)


def _logs(work: _Work, threshold: int, keep: int) -> None:
    files = work.files
    target = files.resolve("/var/log")
    journal = files.resolve(JOURNAL_DIR).host + "/"
    for path, size, _ in _files(work.host, target.host):
        if path.startswith(journal) or size == 0:
            continue
        where = _guest_path(files, path)
        if _ROTATED_LOG.fullmatch(posixpath.basename(path)):
            work.estimated += size
            if not files.dry_run:
                run_tool(work.host, ["truncate", "-s", "0", path])
            work.changes.append(
                Change("modify", where, f"emptied the rotated log {where} ({size} bytes)")
            )
        elif size > threshold:
            work.estimated += size - keep
            if not files.dry_run:
                _cut_to_tail(work, path, size, keep)
            detail = f"cut {where} from {size} bytes to its last {keep} bytes"
            work.changes.append(Change("modify", where, detail))


def free_disk_space(
    guest: Guest,
    *,
    journal_max: str = "100M",
    log_threshold: int = 64 * MIB,
    keep_tail: int = MIB,
) -> DiskSpaceReport:
    """Free space on the guest root (journal, package caches, logs) and say how much.

    Idempotent: a second run finds nothing more to free and returns no changes.
    """
    files, host = guest.files, guest.host
    parse_size(journal_max)
    if keep_tail >= log_threshold or keep_tail < 0:
        raise InvalidInputError("keep_tail must be smaller than log_threshold")
    before = free_bytes(host, files.root)
    report = DiskSpaceReport(largest_directories(host, files.root), before, before)
    work = _Work(files, host)
    _journal(work, journal_max)
    _package_caches(work)
    _logs(work, log_threshold, keep_tail)
    report.changes, report.estimated = work.changes, work.estimated
    if not files.dry_run:
        run_tool(host, ["sync", "-f", files.root], check=False)
        report.free_after = free_bytes(host, files.root)
    return report
