"""The fleet tables of the journal (cloudrescue/fleet/journal.py) and the fleet id of rescues."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from cloudrescue.cloud.base import ServerInfo
from cloudrescue.errors import NotFoundError
from cloudrescue.fleet.journal import FleetJournal
from cloudrescue.journal import Journal


def servers(count: int) -> list[ServerInfo]:
    return [ServerInfo(id=f"id-{n}", name=f"web-{n}", status="ACTIVE", task_state=None)
            for n in range(1, count + 1)]  # fmt: skip


def test_a_run_is_written_with_its_members_before_they_start(tmp_path: Path) -> None:
    fleets = FleetJournal(Journal(tmp_path))
    fleet_id = fleets.start(
        cloud="lab",
        command="fix-ssh-keys",
        playbook="fix-ssh-keys",
        params={"key": ["/k.pub"]},
        dry_run=False,
        servers=servers(3),
    )
    [run] = fleets.runs()
    assert run.fleet_id == fleet_id and run.state == "running" and run.process_alive
    assert [(m.position, m.server_name, m.result) for m in run.members] == [
        (1, "web-1", "not-started"), (2, "web-2", "not-started"), (3, "web-3", "not-started")
    ]  # fmt: skip
    assert run.params == {"key": ["/k.pub"]}

    fleets.record(fleet_id, "id-2", "failed", error="boom", exit_status="CONNECTION")
    fleets.record(fleet_id, "id-1", "changed")
    fleets.finish(fleet_id, "finished")
    run = fleets.get(fleet_id)
    assert run.state == "finished"
    assert [m.result for m in run.members] == ["changed", "failed", "not-started"]
    assert (run.members[1].error, run.members[1].exit_status) == ("boom", "CONNECTION")
    assert run.counts() == {"changed": 1, "failed": 1, "not-started": 1}


def test_rescues_carry_the_fleet_id(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    single = journal.start(cloud="lab", server_id="a", server_name="a", command="run x")
    fleet = journal.for_fleet("f1").start(cloud="lab", server_id="b", server_name="b",
                                          command="run x")  # fmt: skip
    by_run = {entry.run_id: entry.fleet_id for entry in journal.entries()}
    assert by_run == {single: "", fleet: "f1"}


def test_an_older_journal_gains_the_fleet_column(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE rescues (run_id TEXT PRIMARY KEY, cloud TEXT NOT NULL, server_id TEXT "
            "NOT NULL, server_name TEXT NOT NULL, command TEXT NOT NULL, pid INTEGER NOT NULL, "
            "state TEXT NOT NULL, started_at TEXT NOT NULL, updated_at TEXT NOT NULL, note TEXT "
            "NOT NULL DEFAULT '')"
        )
        db.execute("INSERT INTO rescues VALUES ('r1', 'lab', 's', 'web', 'run x', 1, 'rescued', "
                   "'2026-01-01', '2026-01-01', '')")  # fmt: skip
    [entry] = Journal(tmp_path).entries()
    assert (entry.run_id, entry.fleet_id, entry.pid_start) == ("r1", "", "")


def test_an_unknown_run_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no fleet run 'f00'"):
        FleetJournal(Journal(tmp_path)).get("f00")
