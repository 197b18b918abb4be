"""Local journal of every rescue cloudrescue starts (SQLite in the user's state dir).

A rescue is written down *before* the cloud is asked, and marked restored only once the
instance is back to ACTIVE. Whatever a crash, ``kill -9`` or lost laptop leaves behind is
therefore listed by ``cloudrescue status`` and restored by ``cloudrescue resume``.
No secret is ever stored here.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from cloudrescue.errors import InvalidInputError

JournalState = Literal[
    "rescue-requested", "rescued", "unrescue-requested", "restored", "left-in-rescue", "held"
]
# "held": left in rescue on purpose (``cloudrescue rescue``); the others are runs in flight or
# runs that died in flight.
OPEN_STATES: tuple[JournalState, ...] = (
    "rescue-requested",
    "rescued",
    "unrescue-requested",
    "left-in-rescue",
    "held",
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rescues (
    run_id TEXT PRIMARY KEY,
    cloud TEXT NOT NULL,
    server_id TEXT NOT NULL,
    server_name TEXT NOT NULL,
    command TEXT NOT NULL,
    pid INTEGER NOT NULL,
    state TEXT NOT NULL,
    started_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    pid_start TEXT NOT NULL DEFAULT '',
    fleet_id TEXT NOT NULL DEFAULT ''
)
"""
_INSERT = (
    "INSERT INTO rescues (run_id, cloud, server_id, server_name, command, pid, state, "
    "started_at, updated_at, note, pid_start, fleet_id) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, '', ?, ?)"
)
_SELECT = (
    "SELECT run_id, cloud, server_id, server_name, command, pid, state, started_at, "
    "updated_at, note, pid_start, fleet_id FROM rescues"
)
_ADDED_COLUMNS = {  # columns of later versions, added to an older journal when it is opened
    "pid_start": "ALTER TABLE rescues ADD COLUMN pid_start TEXT NOT NULL DEFAULT ''",
    "fleet_id": "ALTER TABLE rescues ADD COLUMN fleet_id TEXT NOT NULL DEFAULT ''",
}


def default_state_dir() -> Path:
    """``$CLOUDRESCUE_STATE_DIR``, else ``$XDG_STATE_HOME/cloudrescue``, else ~/.local/state."""
    explicit = os.environ.get("CLOUDRESCUE_STATE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "cloudrescue"


def timestamp() -> str:
    """The time as the journal stores it (``started_at``, ``updated_at``; the fleet tables
    too): UTC, ISO 8601, whole seconds."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def process_start(pid: int) -> str:
    """When process ``pid`` started (clock ticks since boot, from /proc), "" if unknown.

    With the pid it names one process: a pid reused after the run died has another start.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else ""


def process_alive(pid: int, pid_start: str) -> bool:
    """Whether cloudrescue process ``pid``, started at ``pid_start`` ("" if unknown), still
    runs on this machine (a reused pid is another process)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if pid_start and process_start(pid) != pid_start:
        return False  # the pid was reused by another process since
    try:
        return b"cloudrescue" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


@dataclass(frozen=True)
class JournalEntry:
    """One rescue as the journal knows it."""

    run_id: str
    cloud: str
    server_id: str
    server_name: str
    command: str
    pid: int
    state: JournalState
    started_at: str
    updated_at: str
    note: str
    pid_start: str = ""
    fleet_id: str = ""  # the fleet run it belongs to ("" for a single-instance command)

    @property
    def process_alive(self) -> bool:
        """Whether the process that started the rescue still runs (on this machine)."""
        return process_alive(self.pid, self.pid_start)


class JournalError(InvalidInputError):
    """The journal's file or directory is unusable (not a directory, not a database...)."""


class Journal:
    """The rescue journal at ``<state dir>/journal.sqlite3``.

    Every operation opens its own connection, so one ``Journal`` serves many threads (the
    workers of a fleet run). ``fleet_id`` is written on every rescue it starts.
    """

    def __init__(self, state_dir: Path | None = None, *, fleet_id: str = "") -> None:
        self.path = (state_dir or default_state_dir()) / "journal.sqlite3"
        self.fleet_id = fleet_id

    def for_fleet(self, fleet_id: str) -> Journal:
        """The same journal, recording the rescues it starts under fleet run ``fleet_id``."""
        return Journal(self.path.parent, fleet_id=fleet_id)

    @contextmanager
    def database(self) -> Iterator[sqlite3.Connection]:
        """A connection in a transaction (committed on success); ``JournalError`` when the
        file cannot be used. Other tables of the same file (``fleet/journal.py``) use it."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            with closing(sqlite3.connect(self.path, timeout=30)) as db:
                db.execute(_SCHEMA)
                columns = {row[1] for row in db.execute("PRAGMA table_info(rescues)")}
                for column, alter in _ADDED_COLUMNS.items():
                    if column not in columns:
                        db.execute(alter)
                with db:
                    yield db
        except (OSError, sqlite3.DatabaseError) as error:
            raise JournalError(
                f"the rescue journal {self.path} cannot be used: {error}",
                hint="move it away, or set CLOUDRESCUE_STATE_DIR to a directory of your own",
            ) from error

    def start(self, *, cloud: str, server_id: str, server_name: str, command: str) -> str:
        """Record a rescue about to be requested; returns its run id."""
        run_id = secrets.token_hex(6)
        now = timestamp()
        with self.database() as db:
            db.execute(
                _INSERT,
                (
                    run_id,
                    cloud,
                    server_id,
                    server_name,
                    command,
                    os.getpid(),
                    "rescue-requested",
                    now,
                    now,
                    process_start(os.getpid()),
                    self.fleet_id,
                ),
            )
        return run_id

    def update(self, run_id: str, state: JournalState, note: str | None = None) -> None:
        """Move a rescue to ``state``; ``note`` replaces its note (kept when not given)."""
        with self.database() as db:
            db.execute(
                "UPDATE rescues SET state = ?, updated_at = ?, note = COALESCE(?, note) "
                "WHERE run_id = ?",
                (state, timestamp(), note, run_id),
            )

    def note(self, run_id: str, note: str) -> None:
        """Replace a rescue's note, its state as it is."""
        with self.database() as db:
            db.execute(
                "UPDATE rescues SET updated_at = ?, note = ? WHERE run_id = ?",
                (timestamp(), note, run_id),
            )

    def entries(self, *, include_restored: bool = False) -> list[JournalEntry]:
        """Rescues, newest first; by default only those not restored yet."""
        query = _SELECT
        params: tuple[str, ...] = ()
        if not include_restored:
            query += f" WHERE state IN ({', '.join('?' for _ in OPEN_STATES)})"
            params = OPEN_STATES
        with self.database() as db:
            rows = db.execute(query + " ORDER BY started_at DESC, rowid DESC", params).fetchall()
        return [JournalEntry(*row) for row in rows]
