"""The lab's ledger: every resource is written down *before* it is made, so it can be undone.

``<state-dir>/ledger.jsonl`` holds one JSON object per line: ``{"op": "add", "kind", "key",
"data"}`` when a resource is about to be made (again later with more data, e.g. a pid) and
``{"op": "done", "kind", "key"}`` once it is gone. Replaying the file gives what may still
exist, in creation order; ``undo_all`` removes it newest first. Undo handlers must be
idempotent: the resource may never have been made (crash right after recording it).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloudrescue.errors import LabError


@dataclass(frozen=True)
class Entry:
    """A resource the lab made or was about to make."""

    kind: str
    key: str
    data: dict[str, Any] = field(default_factory=dict)


UndoHandler = Callable[[Entry], None]


class Ledger:
    """Append-only record of the lab's resources (safe across threads and processes)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def _append(self, record: dict[str, Any]) -> None:
        line = (json.dumps(record, sort_keys=True) + "\n").encode()
        with self._lock:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    line = b"\n" + line  # after a line cut short by a crash
                os.write(fd, line)
            finally:
                os.close(fd)

    def record(self, kind: str, key: str, **data: Any) -> None:
        """Note that ``kind``/``key`` is about to exist (or update what is known of it)."""
        self._append({"op": "add", "kind": kind, "key": key, "data": data})

    def forget(self, kind: str, key: str) -> None:
        """Note that ``kind``/``key`` no longer exists."""
        self._append({"op": "done", "kind": kind, "key": key})

    def live(self) -> list[Entry]:
        """Resources that may still exist, oldest first (the newest data of each)."""
        entries: dict[tuple[str, str], Entry] = {}
        try:
            lines = self.path.read_text().splitlines()
        except FileNotFoundError:
            return []
        for line in lines:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a crash
            ident = (str(record.get("kind")), str(record.get("key")))
            if record.get("op") == "add":
                old = entries.pop(ident, None)
                merged = {**(old.data if old else {}), **record.get("data", {})}
                entries[ident] = Entry(ident[0], ident[1], merged)
            else:
                entries.pop(ident, None)
        return list(entries.values())

    def undo(self, entry: Entry, handlers: Mapping[str, UndoHandler]) -> None:
        """Undo one entry with its kind's handler and forget it."""
        handler = handlers.get(entry.kind)
        if handler is None:
            raise LabError(f"ledger: no way to undo a {entry.kind!r}")
        handler(entry)
        self.forget(entry.kind, entry.key)

    def undo_all(
        self, handlers: Mapping[str, UndoHandler], *, only: Callable[[Entry], bool] | None = None
    ) -> None:
        """Undo every live entry (or those ``only`` selects), newest first, best effort.

        Raises ``LabError`` naming what could not be undone, after trying everything.
        """
        failures: list[str] = []
        for entry in reversed(self.live()):
            if only is not None and not only(entry):
                continue
            try:
                self.undo(entry, handlers)
            except (LabError, OSError) as error:
                failures.append(f"{entry.kind} {entry.key}: {error}")
        if failures:
            raise LabError("could not remove: " + "; ".join(failures))
