"""Fleet runs in the journal: which instances a run chose, in order, and what became of each.

Kept in the same SQLite file as the rescues (``cloudrescue/journal.py``): a fleet run is
written down with all its members *before* the first one starts, and each member's result is
written as it ends, so after a crash or ``kill -9`` ``fleet show`` still tells what was done,
``fleet resume`` finds the rescues left open (their entries carry the fleet id), and
``fleet resume --continue`` knows which members never ran. No secret is stored: the playbook's
secret parameters are asked for again by ``--continue``.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
from dataclasses import dataclass
from typing import Any, Literal

from cloudrescue.cloud.base import ServerInfo
from cloudrescue.errors import NotFoundError
from cloudrescue.journal import Journal, process_alive, process_start, timestamp

MemberResult = Literal["changed", "ok", "skipped", "failed", "interrupted", "not-started"]
DONE_RESULTS: tuple[MemberResult, ...] = ("changed", "ok", "skipped", "failed")
FleetState = Literal["running", "finished", "interrupted"]

_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS fleet_runs (
    fleet_id TEXT PRIMARY KEY,
    cloud TEXT NOT NULL,
    command TEXT NOT NULL,
    playbook TEXT NOT NULL,
    params TEXT NOT NULL,
    dry_run INTEGER NOT NULL,
    state TEXT NOT NULL,
    pid INTEGER NOT NULL,
    pid_start TEXT NOT NULL,
    started_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
)
""",
    """
CREATE TABLE IF NOT EXISTS fleet_members (
    fleet_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    server_id TEXT NOT NULL,
    server_name TEXT NOT NULL,
    result TEXT NOT NULL,
    error TEXT NOT NULL DEFAULT '',
    exit_status TEXT NOT NULL DEFAULT '',
    updated_at TEXT NOT NULL,
    PRIMARY KEY (fleet_id, server_id)
)
""",
)


@dataclass(frozen=True)
class FleetMember:
    """One instance of a fleet run and its result so far."""

    position: int
    server_id: str
    server_name: str
    result: MemberResult
    error: str
    exit_status: str


@dataclass(frozen=True)
class FleetRun:
    """A fleet run as the journal knows it."""

    fleet_id: str
    cloud: str
    command: str
    playbook: str
    params: dict[str, list[str]]  # the non-secret parameters, as given
    dry_run: bool
    state: FleetState
    pid: int
    pid_start: str
    started_at: str
    updated_at: str
    members: tuple[FleetMember, ...]

    @property
    def process_alive(self) -> bool:
        """Whether the process running it is still there (same check as a rescue's)."""
        return process_alive(self.pid, self.pid_start)

    def counts(self) -> dict[str, int]:
        """How many members have each result."""
        found: dict[str, int] = {}
        for member in self.members:
            found[member.result] = found.get(member.result, 0) + 1
        return found


class FleetJournal:
    """The fleet tables of the rescue journal."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    def _db(self) -> Any:
        return self.journal.database()

    @staticmethod
    def _ensure(db: sqlite3.Connection) -> None:
        for statement in _SCHEMA:
            db.execute(statement)

    def start(
        self,
        *,
        cloud: str,
        command: str,
        playbook: str,
        params: dict[str, list[str]],
        dry_run: bool,
        servers: list[ServerInfo],
    ) -> str:
        """Record a fleet run and its members (all not-started); returns its fleet id."""
        fleet_id = "f" + secrets.token_hex(5)
        now = timestamp()
        with self._db() as db:
            self._ensure(db)
            db.execute(
                "INSERT INTO fleet_runs VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?, ?, ?)",
                (
                    fleet_id,
                    cloud,
                    command,
                    playbook,
                    json.dumps(params, sort_keys=True),
                    int(dry_run),
                    os.getpid(),
                    process_start(os.getpid()),
                    now,
                    now,
                ),
            )
            db.executemany(
                "INSERT INTO fleet_members (fleet_id, position, server_id, server_name, result, "
                "updated_at) VALUES (?, ?, ?, ?, 'not-started', ?)",
                [
                    (fleet_id, position, server.id, server.name, now)
                    for position, server in enumerate(servers, start=1)
                ],
            )
        return fleet_id

    def adopt(self, fleet_id: str) -> None:
        """This process now runs ``fleet_id`` (``fleet resume --continue``)."""
        with self._db() as db:
            self._ensure(db)
            db.execute(
                "UPDATE fleet_runs SET state = 'running', pid = ?, pid_start = ?, updated_at = ? "
                "WHERE fleet_id = ?",
                (os.getpid(), process_start(os.getpid()), timestamp(), fleet_id),
            )

    def record(
        self,
        fleet_id: str,
        server_id: str,
        result: MemberResult,
        *,
        error: str = "",
        exit_status: str = "",
    ) -> None:
        """Write one member's result."""
        with self._db() as db:
            self._ensure(db)
            db.execute(
                "UPDATE fleet_members SET result = ?, error = ?, exit_status = ?, updated_at = ? "
                "WHERE fleet_id = ? AND server_id = ?",
                (result, error, exit_status, timestamp(), fleet_id, server_id),
            )

    def finish(self, fleet_id: str, state: FleetState) -> None:
        """Close the run: ``finished``, or ``interrupted`` (Ctrl-C)."""
        with self._db() as db:
            self._ensure(db)
            db.execute(
                "UPDATE fleet_runs SET state = ?, updated_at = ? WHERE fleet_id = ?",
                (state, timestamp(), fleet_id),
            )

    def runs(self) -> list[FleetRun]:
        """Every fleet run, newest first."""
        with self._db() as db:
            self._ensure(db)
            rows = db.execute(
                "SELECT * FROM fleet_runs ORDER BY started_at DESC, rowid DESC"
            ).fetchall()
            members = db.execute(
                "SELECT fleet_id, position, server_id, server_name, result, error, exit_status "
                "FROM fleet_members ORDER BY fleet_id, position"
            ).fetchall()
        by_run: dict[str, list[FleetMember]] = {}
        for fleet_id, *fields in members:
            by_run.setdefault(fleet_id, []).append(FleetMember(*fields))
        return [
            FleetRun(
                fleet_id=row[0],
                cloud=row[1],
                command=row[2],
                playbook=row[3],
                params=json.loads(row[4]),
                dry_run=bool(row[5]),
                state=row[6],
                pid=row[7],
                pid_start=row[8],
                started_at=row[9],
                updated_at=row[10],
                members=tuple(by_run.get(row[0], [])),
            )
            for row in rows
        ]

    def get(self, fleet_id: str) -> FleetRun:
        """One fleet run (``NotFoundError`` when the journal has none by that id)."""
        for run in self.runs():
            if run.fleet_id == fleet_id:
                return run
        raise NotFoundError(
            f"no fleet run {fleet_id!r} in the journal {self.journal.path}",
            hint="`cloudrescue fleet list` shows the fleet runs",
        )
