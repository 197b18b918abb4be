"""What scripts read (issue 9): the records of ``cli/records.py`` are what the commands print,
docs/output.md is generated from them, and every format renders the same fields."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
import yaml

from cloudrescue.cli.instances import _cloud_row, _journal_row
from cloudrescue.cli.output import OutputOptions, show_list
from cloudrescue.cli.records import FLEET_PLAN, PLAYBOOK, RUN, STATUS, STEP, markdown
from cloudrescue.cli.reports import render_run, run_record
from cloudrescue.cloud.base import ServerInfo
from cloudrescue.errors import InvalidInputError
from cloudrescue.journal import Journal
from cloudrescue.marks import marks_for, read_mark
from cloudrescue.rescue import CloudRescue
from tests.piped import piped

from .test_runner import EDIT, Run

REPO = Path(__file__).resolve().parents[2]
LONG = "db-" + "a-very-long-name-" * 8 + "end"




def test_output_docs_are_up_to_date() -> None:
    assert (REPO / "docs/output.md").read_text() == markdown(), (
        "docs/output.md is out of date: run `python -m cloudrescue.cli.records > docs/output.md`"
    )


def test_playbook_records_have_the_documented_fields() -> None:
    from cloudrescue.cli.playbooks import _playbook_record
    from cloudrescue.playbook import catalog

    record = _playbook_record(catalog.load_shipped("fix-ssh-keys"))
    assert tuple(record) == PLAYBOOK.names
    assert json.loads(json.dumps(record))["parameters"][0]["name"] == "key"


def test_status_rows_have_the_documented_fields(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.start(cloud="lab", server_id="id-1", server_name=LONG, command="rescue")
    [entry] = journal.entries()
    assert tuple(_journal_row(entry)) == STATUS.names
    server = ServerInfo("id-2", "web-2", "RESCUE", None, metadata=marks_for("run-2"))
    row = _cloud_row(CloudRescue(server, read_mark(server)), "lab")
    assert tuple(row) == STATUS.names
    assert (row["run"], row["state"], row["source"]) == ("run-2", "RESCUE", "cloud")


def test_run_record_has_the_documented_fields(tmp_path: Path) -> None:
    report = Run(tmp_path).play(EDIT, name=["web-1"])
    record = run_record(report)
    assert tuple(record) == RUN.names
    assert [tuple(step) for step in record["steps"]] == [STEP.names]
    env, out, _ = piped()
    render_run(env, OutputOptions(format="json"), report)
    shown = json.loads(out.getvalue())
    assert (shown["instance"], shown["changed"], shown["status"]) == ("web-1", 1, "ACTIVE")
    assert shown["steps"][0]["changes"][0]["path"] == "/etc/hostname"
    env, out, _ = piped()
    render_run(env, OutputOptions(format="value", columns=["changed", "status"]), report)
    assert out.getvalue() == "1\nACTIVE\n"


ROWS = [
    {"name": LONG, "id": "0f1e", "alive": False, "note": "a [bold]note[/]"},
    {"name": "web-1", "id": "7a8b", "alive": True, "note": ""},
]
COLUMNS = ("name", "id", "alive", "note")


def test_every_format_prints_every_row_whole_when_piped() -> None:
    printed: dict[str, str] = {}
    for kind in ("table", "json", "yaml", "csv", "value"):
        env, out, _ = piped()
        show_list(env, OutputOptions(format=kind), COLUMNS, ROWS)
        printed[kind] = out.getvalue()
    assert json.loads(printed["json"]) == ROWS
    assert yaml.safe_load(printed["yaml"]) == ROWS
    assert next(iter(csv.DictReader(io.StringIO(printed["csv"]))))["name"] == LONG
    assert printed["value"].splitlines() == [
        f"{LONG} 0f1e false a [bold]note[/]",
        "web-1 7a8b true ",
    ]
    first = printed["table"].splitlines()[1]
    assert LONG in first and "a [bold]note[/]" in first  # not cut, not wrapped, not markup


def test_columns_choose_and_order_the_fields() -> None:
    env, out, _ = piped()
    show_list(env, OutputOptions(format="csv", columns=["id", "name"]), COLUMNS, ROWS)
    assert out.getvalue().splitlines()[:2] == ["id,name", f"0f1e,{LONG}"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (OutputOptions(format="xml"), "--format 'xml': one of table, json, yaml, value, csv"),
        (OutputOptions(columns=["nope"]), "no column 'nope' here (columns: name, id, alive, note)"),
    ],
)
def test_a_bad_format_or_column_is_one_clear_error(options: OutputOptions, message: str) -> None:
    env, out, _ = piped()
    with pytest.raises(InvalidInputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        show_list(env, options, COLUMNS, ROWS)
    assert not out.getvalue()


def test_control_characters_are_shown_as_text_and_json_keeps_the_string() -> None:
    rows = [{"name": "evil\x1b[2J"}]
    for kind in ("value", "csv", "yaml", "table"):
        env, out, _ = piped()
        show_list(env, OutputOptions(format=kind), ("name",), rows)
        assert "\x1b" not in out.getvalue(), kind
    env, out, _ = piped()
    show_list(env, OutputOptions(format="json"), ("name",), rows)
    assert json.loads(out.getvalue()) == rows and "\x1b" not in out.getvalue()


def test_fleet_plan_rows_have_the_documented_fields() -> None:
    from cloudrescue.cli.fleet import plan_rows
    from cloudrescue.fleet.pacing import Pacing
    from cloudrescue.fleet.selection import Selection, resolve
    from tests.fakes import FakeClock, FakeCloud

    cloud = FakeCloud(FakeClock())
    cloud.add("web-1", tags=("prod",))
    cloud.add("web-2", address="", tags=("prod",))
    selected = resolve(cloud, Selection.parse(patterns=["web-*"], tags=["prod"]))
    rows = plan_rows(selected, Pacing.parse(10, "1"))
    assert [tuple(row) for row in rows] == [FLEET_PLAN.names] * 2
    env, out, _ = piped()
    show_list(env, OutputOptions(format="json"), FLEET_PLAN.names, rows)
    first, second = json.loads(out.getvalue())
    assert (first["name"], first["address"], first["batch"]) == ("web-1", "203.0.113.10", 1)
    assert (second["address"], second["batch"], second["why"]) == (None, 2, "web-*, --tag prod")
