"""Free space on a full guest root: journal, package caches and logs, nothing else.

Reports the largest directories (``du -x`` of the mounted root) and the free bytes before and
after (``df``). Frees, in this order: archived journal files beyond ``journal_max`` (the
rescue's ``journalctl --vacuum-size``, or the oldest archived files when it has none), the
package caches (``/var/cache/apt/archives/*.deb``, ``/var/cache/dnf``, ``/var/cache/yum``),
rotated logs in ``/var/log`` (emptied) and live text logs taking more than ``log_threshold``
on the disk (cut down to about their last ``keep_tail`` bytes, from the start of a line, same
file, same owner and mode). Sizes are what files take on the disk (sparse ``lastlog`` takes
little), and binary logs (``lastlog``, ``wtmp``, ``btmp``, journal files, anything with a NUL
byte) and files with other hard links (their other names may be anything: ``/etc/shadow``) are
never cut. All commands run on the rescue system on paths resolved by ``GuestFS``.
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
BINARY_LOGS = frozenset({"lastlog", "wtmp", "btmp", "utmp", "faillog", "tallylog"})
SNIFF_BYTES = 8192
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


@dataclass(frozen=True)
class _File:
    path: str  # on the rescue
    size: int  # apparent
    allocated: int  # on the disk
    mtime: float
    links: int = 1  # hard links: emptying one name would empty the others (/etc/shadow)


def _files(host: Host, directory: str) -> list[_File]:
    """The regular files under ``directory`` (one filesystem)."""
    result = run_tool(
        host,
        ["find", directory, "-xdev", "-type", "f", "-printf", r"%s\t%b\t%T@\t%n\t%p\0"],
        check=False,
    )
    found = []
    for record in result.stdout.split("\0"):
        fields = record.split("\t", 4)
        if len(fields) != 5 or not all(field.isdigit() for field in (*fields[:2], fields[3])):
            continue
        size, blocks, mtime, links, path = fields
        if path:
            found.append(_File(path, int(size), int(blocks) * 512, float(mtime or 0), int(links)))
    return found


def _is_text(host: Host, path: str) -> bool:
    """Whether the start of a file has no NUL byte (a text log, not a binary database)."""
    script = (
        f'a=$(head -c {SNIFF_BYTES} -- "$1" | wc -c); '
        f'b=$(head -c {SNIFF_BYTES} -- "$1" | tr -d "\\000" | wc -c); [ "$a" = "$b" ]'
    )
    return run_tool(host, ["sh", "-c", script, "sh", path], check=False).ok


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
    total = sum(entry.size for entry in entries)
    archived = sorted(
        (f for f in entries if _ARCHIVED_JOURNAL.fullmatch(posixpath.basename(f.path))),
        key=lambda f: f.mtime,
    )
    doomed: list[_File] = []
    for entry in archived:
        if total <= limit:
            break
        doomed.append(entry)
        total -= entry.size
    if not doomed:
        return
    work.estimated += sum(entry.allocated for entry in doomed)
    if files.dry_run or not rescue_has(work.host, "journalctl"):
        for entry in doomed:
            work.changes += delete_file(files, _guest_path(files, entry.path), why="old journal")
        return
    argv = ["journalctl", f"--directory={target.host}", f"--vacuum-size={journal_max}"]
    run_tool(work.host, argv, timeout=600)
    left = {entry.path for entry in _files(work.host, target.host)}
    for entry in entries:
        if entry.path not in left:
            where = _guest_path(files, entry.path)
            detail = (
                f"journalctl --vacuum-size={journal_max} deleted {where} ({entry.size} bytes)"
            )
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
        size = sum(entry.allocated for entry in entries)
        work.estimated += size
        detail = f"deleted the {len(entries)} files ({size} bytes) of the package cache {tree}"
        if not files.dry_run:
            run_tool(work.host, ["find", target.host, "-xdev", "-type", "f", "-delete"])
        work.changes.append(Change("remove", target.guest, detail))


def _cut_to_tail(work: _Work, path: str, keep: int) -> None:
    """Keep about the last ``keep`` bytes of a text log, from the start of a line (the file
    itself is rewritten: same inode, owner and mode)."""
    host = work.host
    scratch = run_tool(host, ["mktemp", "-t", "cloudrescue-tail.XXXXXXXX"]).stdout.strip()
    try:
        # The kept tail starts mid-line: drop that partial line, unless it is all there is.
        script = (
            'tail -c "$1" -- "$2" > "$3" && '
            'if [ "$(head -c "$1" -- "$3" | wc -l)" -gt 0 ]; then '
            'tail -n +2 -- "$3" > "$3.lines" && mv -- "$3.lines" "$3"; fi && '
            'cat -- "$3" > "$2"'
        )
        run_tool(host, ["sh", "-c", script, "sh", str(keep), path, scratch], timeout=600)
    finally:
        run_tool(host, ["rm", "-f", "--", scratch, f"{scratch}.lines"], check=False)


def _logs(work: _Work, threshold: int, keep: int) -> None:
    files = work.files
    target = files.resolve("/var/log")
    journal = files.resolve(JOURNAL_DIR).host + "/"
    for entry in _files(work.host, target.host):
        name = posixpath.basename(entry.path)
        if entry.path.startswith(journal) or entry.size == 0 or name in BINARY_LOGS:
            continue
        if entry.links > 1:  # another name of the same file, maybe outside /var/log
            continue
        where = _guest_path(files, entry.path)
        if _ROTATED_LOG.fullmatch(name):
            work.estimated += entry.allocated
            if not files.dry_run:
                run_tool(work.host, ["truncate", "-s", "0", entry.path])
            detail = f"emptied the rotated log {where} ({entry.size} bytes)"
            work.changes.append(Change("modify", where, detail))
        elif entry.allocated > threshold and _is_text(work.host, entry.path):
            work.estimated += entry.allocated - keep
            if not files.dry_run:
                _cut_to_tail(work, entry.path, keep)
            detail = f"cut {where} from {entry.size} bytes to its last lines (about {keep} bytes)"
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
