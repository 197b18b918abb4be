"""What a repair shell changed on the guest: a listing taken on entry, compared on leaving.

The listing is the rescue's own ``find -P`` (symlinks are listed, never followed, the starting
points included) over the guest directories people repair by hand, bounded in time and size:
type, mode, owner, size and mtime of each entry. File names are the guest's and may hold any
byte but NUL (the separator): invalid UTF-8 comes back replaced (as every remote command's
output does), and names are escaped when printed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from cloudrescue.remote.base import CommandTimeoutError, Host

WATCHED = ("/etc", "/home", "/root", "/boot", "/var/spool/cron")
LISTING_TIMEOUT = 30.0
MAX_ENTRIES = 200_000
FORMAT = r"%y %m %U %G %s %T@ %p\0"

ChangeKind = Literal["created", "changed", "removed"]
CHANGE_KINDS: tuple[ChangeKind, ...] = ("created", "changed", "removed")


@dataclass(frozen=True)
class Entry:
    """One listed file: what ``ls -l`` would tell about it."""

    kind: str  # find's %y: f, d, l, ...
    mode: str
    owner: str
    size: int
    mtime: str


@dataclass(frozen=True)
class Listing:
    """The watched guest paths (guest-absolute) and what each looked like."""

    entries: Mapping[str, Entry]
    complete: bool  # False when the listing was cut short (time or size bound)


@dataclass(frozen=True)
class Change:
    """A guest file the session created, changed or removed."""

    kind: ChangeKind
    path: str  # guest-absolute, surrogate-escaped
    detail: str  # what changed: "size 120 -> 180, mtime", "mode 644 -> 600"...

    def as_record(self) -> dict[str, str]:
        """The change as the journal and ``-f json`` keep it."""
        return {"change": self.kind, "path": self.path, "detail": self.detail}


def take_listing(host: Host, root: str, watched: Sequence[str] = WATCHED) -> Listing:
    """List ``watched`` under the guest's mounted ``root`` on the rescue system."""
    starts = [f"{root.rstrip('/')}{path}" for path in watched]
    script = 'find -P "$@" -printf "$FORMAT" 2>/dev/null | head -z -n "$LIMIT"'
    argv = ["env", f"FORMAT={FORMAT}", f"LIMIT={MAX_ENTRIES + 1}", "timeout", "-k", "5",
            str(int(LISTING_TIMEOUT)), "sh", "-c", script, "listing", *starts]  # fmt: skip
    try:
        result = host.run(argv, check=False, timeout=LISTING_TIMEOUT + 15)
    except CommandTimeoutError:
        return Listing({}, complete=False)
    raw = result.stdout.encode("utf-8", "surrogateescape")
    entries: dict[str, Entry] = {}
    records = [record for record in raw.split(b"\0") if record]
    prefix = root.rstrip("/").encode()
    for record in records[:MAX_ENTRIES]:
        fields = record.split(b" ", 6)
        if len(fields) != 7 or not fields[6].startswith(prefix):
            continue
        kind, mode, uid, gid, size, mtime, path = fields
        guest_path = (path[len(prefix) :] or b"/").decode("utf-8", "surrogateescape")
        entries[guest_path] = Entry(
            kind.decode(), mode.decode(), f"{uid.decode()}:{gid.decode()}",
            int(size) if size.isdigit() else 0, mtime.decode(),
        )  # fmt: skip
    complete = result.exit_code == 0 and len(records) <= MAX_ENTRIES
    return Listing(entries, complete)


def _detail(before: Entry, after: Entry) -> str:
    parts = []
    if before.kind != after.kind:
        parts.append(f"type {before.kind} -> {after.kind}")
    if before.mode != after.mode:
        parts.append(f"mode {before.mode} -> {after.mode}")
    if before.owner != after.owner:
        parts.append(f"owner {before.owner} -> {after.owner}")
    if before.size != after.size and after.kind != "d":
        parts.append(f"size {before.size} -> {after.size}")
    if before.mtime != after.mtime and after.kind != "d":
        parts.append("modified")
    return ", ".join(parts)


def compare(before: Listing, after: Listing) -> list[Change]:
    """What changed from ``before`` to ``after``, by path (a directory whose only change is
    its mtime is not listed: the files in it are)."""
    changes: list[Change] = []
    for path in sorted(set(before.entries) | set(after.entries)):
        old, new = before.entries.get(path), after.entries.get(path)
        if old is None and new is not None:
            changes.append(Change("created", path, f"{new.kind} mode {new.mode} {new.owner}"))
        elif new is None and old is not None:
            changes.append(Change("removed", path, f"was {old.kind} mode {old.mode}"))
        elif old is not None and new is not None and (detail := _detail(old, new)):
            changes.append(Change("changed", path, detail))
    return changes
