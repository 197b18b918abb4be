"""API-side server records (nova's view of each instance), persisted atomically to servers.json."""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
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
        data = asdict(self)
        data["spec"] = self.spec.to_json()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ServerRecord:
        fields = dict(data)
        fields["spec"] = InstanceSpec.from_json(fields["spec"])
        return cls(**fields)


class ServerStore:
    """Thread-safe server records; every change is written to ``servers.json`` atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._records: dict[str, ServerRecord] = {}

    def exists(self) -> bool:
        return self.path.exists()

    def load(self) -> None:
        data = json.loads(self.path.read_text())
        with self._lock:
            self._records = {
                record.id: record
                for record in (ServerRecord.from_json(item) for item in data["servers"])
            }

    def save(self) -> None:
        with self._lock:
            payload = {
                "version": FORMAT_VERSION,
                "servers": [record.to_json() for record in self._records.values()],
            }
            fd, tmp = tempfile.mkstemp(prefix=".servers.", dir=self.path.parent)
            try:
                with os.fdopen(fd, "w") as handle:
                    json.dump(payload, handle, indent=1, sort_keys=True)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise

    def get(self, server_id: str) -> ServerRecord | None:
        """A copy of one record (changes go through ``edit``)."""
        with self._lock:
            record = self._records.get(server_id)
            return None if record is None else ServerRecord.from_json(record.to_json())

    def all(self) -> list[ServerRecord]:
        """Copies of every record, newest first (nova's default ``created_at desc``)."""
        with self._lock:
            records = [ServerRecord.from_json(r.to_json()) for r in self._records.values()]
        return sorted(records, key=lambda r: (r.created, r.spec.index), reverse=True)

    def find(self, ref: str) -> list[ServerRecord]:
        """The record with id ``ref``, else every record named ``ref`` (names may repeat)."""
        record = self.get(ref)
        if record is not None:
            return [record]
        return [r for r in self.all() if r.spec.name == ref]

    def add(self, record: ServerRecord) -> None:
        with self._lock:
            self._records[record.id] = record
            self.save()

    def remove(self, server_id: str) -> None:
        with self._lock:
            self._records.pop(server_id, None)
            self.save()

    @contextmanager
    def edit(self, server_id: str) -> Iterator[ServerRecord]:
        """Change one record in place and persist it; KeyError when it does not exist."""
        with self._lock:
            record = self._records[server_id]
            yield record
            record.updated = isotime()
            self.save()
