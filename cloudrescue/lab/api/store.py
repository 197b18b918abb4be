"""API-side server records (nova's view of each instance), persisted atomically to servers.json."""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cloudrescue.lab.model import BootOutcome, InstanceSpec

FORMAT_VERSION = 1

# vm_state values (nova/compute/vm_states.py)
BUILDING = "building"
ACTIVE = "active"
STOPPED = "stopped"
RESCUED = "rescued"
ERROR = "error"

# power_state values (nova/compute/power_state.py)
NOSTATE = 0
RUNNING = 1
SHUTDOWN = 4

# task_state values (nova/compute/task_states.py)
SPAWNING = "spawning"
RESCUING = "rescuing"
UNRESCUING = "unrescuing"
POWERING_OFF = "powering-off"
POWERING_ON = "powering-on"
REBOOTING = "rebooting"
REBOOTING_HARD = "rebooting_hard"
REBOOT_STARTED = "reboot_started"
REBOOT_STARTED_HARD = "reboot_started_hard"

_STATUS: dict[str, dict[str | None, str]] = {
    ACTIVE: {
        None: "ACTIVE",
        REBOOTING: "REBOOT",
        "reboot_pending": "REBOOT",
        REBOOT_STARTED: "REBOOT",
        REBOOTING_HARD: "HARD_REBOOT",
        "reboot_pending_hard": "HARD_REBOOT",
        REBOOT_STARTED_HARD: "HARD_REBOOT",
    },
    BUILDING: {None: "BUILD"},
    STOPPED: {None: "SHUTOFF"},
    RESCUED: {None: "RESCUE"},
    ERROR: {None: "ERROR"},
}


def status_of(vm_state: str, task_state: str | None) -> str:
    """Nova's API ``status`` for a vm_state / task_state pair."""
    by_task = _STATUS.get(vm_state)
    if by_task is None:
        return "UNKNOWN"
    return by_task.get(task_state, by_task[None])


def states_for_statuses(statuses: list[str]) -> tuple[set[str], set[str | None], bool]:
    """vm_states and task_states whose status is one of ``statuses``; True if any default."""
    wanted = {status.lower() for status in statuses}
    vm_states: set[str] = set()
    task_states: set[str | None] = set()
    any_default = False
    for vm_state, by_task in _STATUS.items():
        for task_state, status in by_task.items():
            if status.lower() in wanted:
                vm_states.add(vm_state)
                task_states.add(task_state)
                any_default = any_default or task_state is None
    return vm_states, task_states, any_default


def isotime(moment: datetime | None = None) -> str:
    """``2013-09-03T04:01:32Z`` as nova writes ``created`` / ``updated``."""
    return (moment or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")


def launch_time(moment: datetime | None = None) -> str:
    """``2013-09-23T13:37:00.880302`` as nova writes ``OS-SRV-USG:launched_at``."""
    return (moment or datetime.now(UTC)).replace(tzinfo=None).isoformat(timespec="microseconds")


@dataclass
class ServerRecord:
    """Everything nova knows about one instance."""

    spec: InstanceSpec
    image_id: str
    flavor_id: str
    vm_state: str = BUILDING
    task_state: str | None = SPAWNING
    power_state: int = NOSTATE
    metadata: dict[str, str] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    created: str = field(default_factory=isotime)
    updated: str = field(default_factory=isotime)
    launched_at: str | None = None
    boot_outcome: BootOutcome | None = None
    fault: dict[str, Any] | None = None

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def status(self) -> str:
        return status_of(self.vm_state, self.task_state)

    def set_fault(self, message: str, code: int = 500) -> None:
        self.fault = {"code": code, "created": isotime(), "message": message[:255]}

    def to_json(self) -> dict[str, Any]:
        data = {item.name: getattr(self, item.name) for item in fields(self)}
        data.update(spec=self.spec.to_json(), **self._containers())
        return data

    def copy(self) -> ServerRecord:
        """An independent copy (the spec, frozen, is shared)."""
        return replace(self, **self._containers())

    def _containers(self) -> dict[str, Any]:
        """Copies of the fields that hold mutable containers."""
        fault = None if self.fault is None else dict(self.fault)
        return {"metadata": dict(self.metadata), "tags": list(self.tags), "fault": fault}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ServerRecord:
        fields = dict(data)
        fields["spec"] = InstanceSpec.from_json(fields["spec"])
        return cls(**fields)


class ServerStore:
    """Thread-safe server records; every change is written to ``servers.json`` atomically.

    A change is on disk when ``edit`` / ``add`` / ``remove`` returns, but the file is written
    outside the records' lock, so readers (a listing) never wait for a disk flush: under 50
    rescues at once the flushes made every API answer wait seconds. A reader may therefore be
    shown a change a moment before it is on disk. Each record's JSON is kept, so a change
    serializes only the record it changed.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._records: dict[str, ServerRecord] = {}
        self._json: dict[str, dict[str, Any]] = {}  # each record's to_json(), never mutated
        self._changes = 0  # changes made to the records
        self._write_lock = threading.Lock()
        self._written = 0  # the changes the file holds

    def exists(self) -> bool:
        return self.path.exists()

    def load(self) -> None:
        data = json.loads(self.path.read_text())
        with self._lock:
            self._records = {
                record.id: record
                for record in (ServerRecord.from_json(item) for item in data["servers"])
            }
            self._json = {server_id: r.to_json() for server_id, r in self._records.items()}

    def save(self) -> None:
        """Write the records as they are (a new store's first file)."""
        with self._lock:
            change = self._changed()
        self._write(*change)

    def _changed(self) -> tuple[int, list[dict[str, Any]]]:
        """Count a change (the records' lock held): its number and the records to write."""
        self._changes += 1
        return self._changes, list(self._json.values())

    def _write(self, change: int, servers: list[dict[str, Any]]) -> None:
        """Write the records as of ``change``, unless a later change is on disk already."""
        with self._write_lock:
            if change <= self._written:
                return
            text = json.dumps({"version": FORMAT_VERSION, "servers": servers}, sort_keys=True)
            fd, tmp = tempfile.mkstemp(prefix=".servers.", dir=self.path.parent)
            try:
                with os.fdopen(fd, "w") as handle:
                    handle.write(text)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            self._written = change

    def get(self, server_id: str) -> ServerRecord | None:
        """A copy of one record (changes go through ``edit``)."""
        with self._lock:
            record = self._records.get(server_id)
            return None if record is None else record.copy()

    def all(self) -> list[ServerRecord]:
        """Copies of every record, newest first (nova's default ``created_at desc``)."""
        with self._lock:
            records = [record.copy() for record in self._records.values()]
        return sorted(records, key=lambda r: (r.created, r.spec.index), reverse=True)

    def find(self, ref: str) -> list[ServerRecord]:
        """The record with id ``ref``, else every record named ``ref`` (names may repeat)."""
        record = self.get(ref)
        if record is not None:
            return [record]
        return [r for r in self.all() if r.spec.name == ref]

    def add(self, record: ServerRecord) -> None:
        """Store a copy of ``record`` (later changes go through ``edit``)."""
        record = record.copy()
        with self._lock:
            self._records[record.id] = record
            self._json[record.id] = record.to_json()
            change = self._changed()
        self._write(*change)

    def remove(self, server_id: str) -> None:
        with self._lock:
            self._records.pop(server_id, None)
            self._json.pop(server_id, None)
            change = self._changed()
        self._write(*change)

    @contextmanager
    def edit(self, server_id: str) -> Iterator[ServerRecord]:
        """Change one record in place and persist it; KeyError when it does not exist. When
        the block raises, the record is as it was before it."""
        with self._lock:
            record = self._records[server_id]
            try:
                yield record
            except BaseException:
                self._records[server_id] = ServerRecord.from_json(self._json[server_id])
                raise
            record.updated = isotime()
            self._json[server_id] = record.to_json()
            change = self._changed()
        self._write(*change)
