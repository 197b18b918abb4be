"""`cloudrescue fleet plan` on the lab (issue 10): each selector against six instances made
with tags and metadata, the plan's JSON, its batches, and selections that must be refused (a
typo, a shared name, a cloud that ignores the tag filters). Nothing here changes an instance.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import E2ELab

pytestmark = pytest.mark.lab
R = f"fp{uuid.uuid4().hex[:6]}"  # this module's names and tags, whatever else the lab holds
PROD, STAGING, WEB, DB = f"{R}-prod", f"{R}-staging", f"{R}-web", f"{R}-db"
# name -> tags, metadata
FLEET: dict[str, tuple[list[str], dict[str, str]]] = {
    f"{R}-web-1": ([PROD, WEB], {"role": "web"}),
    f"{R}-web-2": ([PROD, WEB], {"role": "web"}),
    f"{R}-db-1": ([PROD, DB], {"role": "db", "tier": "1"}),
    f"{R}-db-2": ([STAGING, DB], {"role": "db"}),
    f"{R}-cache-1": ([STAGING], {"role": "cache"}),
    f"{R}-twin": ([], {}),
}
TWIN = f"{R}-twin"  # a second instance shares this name


@pytest.fixture(scope="module")
def fleet(lab: E2ELab) -> Iterator[dict[str, str]]:
    """The instances, booted in parallel (name -> id; the second twin as ``TWIN + "#2"``),
    and the second twin in ERROR (``os-resetState``: nothing of it is touched)."""
    import openstack
    from openstack.config import OpenStackConfig

    def add(entry: tuple[str, str]) -> tuple[str, str]:
        key, name = entry
        tags, metadata = FLEET[name]
        return key, str(lab.add(name=name, tags=tags, metadata=metadata)["id"])

    entries = [(name, name) for name in FLEET] + [(f"{TWIN}#2", TWIN)]
    with ThreadPoolExecutor(len(entries)) as pool:
        ids = dict(pool.map(add, entries))
    config = OpenStackConfig(
        config_files=[lab.env["OS_CLIENT_CONFIG_FILE"]], load_envvars=False
    )  # this process's OS_* (a developer's shell) must not choose another cloud
    conn = openstack.connection.Connection(config=config.get_one("lab"))
    conn.compute.reset_server_state(ids[f"{TWIN}#2"], "error")
    try:
        yield ids
    finally:
        for server_id in ids.values():
            lab.admin.call("DELETE", f"/instances/{server_id}")


def plan(lab: E2ELab, *args: str, stdin: str | None = None, **kwargs: Any) -> list[dict[str, Any]]:
    """``fleet plan ARGS -f json``, which must succeed."""
    done = lab.cli("fleet", "plan", *args, "-f", "json", stdin=stdin, timeout=60, **kwargs)
    assert done.returncode == 0, done.stderr
    rows: list[dict[str, Any]] = json.loads(done.stdout)
    return rows


def names(rows: list[dict[str, Any]]) -> list[str]:
    return [row["name"] for row in rows]


def refused(lab: E2ELab, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    done = lab.cli("fleet", "plan", *args, timeout=60, **kwargs)
    assert done.returncode != 0 and not done.stdout, done.stdout
    assert done.stderr.startswith("cloudrescue: error: ") and "Traceback" not in done.stderr
    return done


def test_names_ids_and_globs(lab: E2ELab, fleet: dict[str, str]) -> None:
    rows = plan(lab, f"{R}-db-*", fleet[f"{R}-cache-1"], f"{R}-web-1")
    assert names(rows) == [f"{R}-db-1", f"{R}-db-2", f"{R}-cache-1", f"{R}-web-1"]
    first = rows[0]
    assert set(first) == {"name", "id", "status", "address", "batch", "why"}
    assert (first["id"], first["status"], first["batch"]) == (fleet[f"{R}-db-1"], "ACTIVE", 1)
    assert first["address"].startswith("10.213.") and first["why"] == f"{R}-db-*"
    assert rows[1]["why"] == f"{R}-db-*" and rows[2]["why"] == fleet[f"{R}-cache-1"]


def test_tags_all_any_and_none(lab: E2ELab, fleet: dict[str, str]) -> None:
    rows = plan(lab, "--tag", PROD, "--tag", WEB)
    assert names(rows) == [f"{R}-web-1", f"{R}-web-2"]
    assert {row["why"] for row in rows} == {f"--tag {PROD}, --tag {WEB}"}
    rows = plan(lab, "--any-tag", DB, "--any-tag", STAGING)
    assert names(rows) == [f"{R}-cache-1", f"{R}-db-1", f"{R}-db-2"]
    assert rows[2]["why"] == f"--any-tag {DB}, --any-tag {STAGING}"
    rows = plan(lab, "--not-tag", PROD, "--name-regex", f"^{R}-")
    assert names(rows) == [f"{R}-cache-1", f"{R}-db-2", TWIN, TWIN]
    assert rows[0]["why"] == f"--name-regex ^{R}-, --not-tag {PROD}"


def test_metadata_status_and_name_regex(lab: E2ELab, fleet: dict[str, str]) -> None:
    rows = plan(lab, "--metadata", "role=db", "--name-regex", f"^{R}-")
    assert names(rows) == [f"{R}-db-1", f"{R}-db-2"]
    rows = plan(lab, "--metadata", "role=db", "--metadata", "tier=1", f"{R}-*")
    assert names(rows) == [f"{R}-db-1"]
    assert rows[0]["why"] == f"{R}-*, --metadata role=db, --metadata tier=1"
    rows = plan(lab, "--status", "error", "--name-regex", f"^{R}-")
    assert [(row["id"], row["status"]) for row in rows] == [(fleet[f"{TWIN}#2"], "ERROR")]
    rows = plan(lab, "--name-regex", rf"^{R}-(web|db)-\d$")  # \d: checked here, not by nova
    assert names(rows) == [f"{R}-db-1", f"{R}-db-2", f"{R}-web-1", f"{R}-web-2"]


def test_from_file_and_stdin(lab: E2ELab, fleet: dict[str, str], tmp_path: Path) -> None:
    hosts = tmp_path / "hosts.txt"
    hosts.write_text(f"# to repair\n{R}-web-2\n\n{fleet[f'{R}-db-2']}\n")
    rows = plan(lab, "--from-file", str(hosts))
    assert [(row["name"], row["why"]) for row in rows] == [
        (f"{R}-web-2", f"--from-file {hosts}:2"),
        (f"{R}-db-2", f"--from-file {hosts}:4"),
    ]
    rows = plan(lab, "--from-file", "-", "--status", "ACTIVE", stdin=f"{R}-cache-1\n")
    assert rows[0]["why"] == "--from-file -:1, --status ACTIVE"


def test_all_and_the_batches(lab: E2ELab, fleet: dict[str, str]) -> None:
    everyone = plan(lab, "--all")
    assert set(fleet.values()) <= {row["id"] for row in everyone}
    assert {row["why"] for row in everyone} == {"--all"}
    rows = plan(lab, "--tag", PROD, "--batches", "1,50%")
    assert [row["batch"] for row in rows] == [1, 2, 2]  # 1, then 50% of 3 rounded up
    shown = lab.cli("fleet", "plan", "--tag", PROD, "--batches", "1", "--concurrency", "4")
    assert shown.returncode == 0, shown.stderr
    table = shown.stdout.splitlines()
    assert table[0].split() == ["name", "id", "status", "address", "batch", "why"]
    assert table[-1] == (
        "3 instances in 3 batches (1, 1, 1), at most 4 at a time (slow start 1, 2, 4); "
        "nothing was changed"
    )
    ramp = lab.cli("fleet", "plan", "--tag", PROD, "--concurrency", "20", "--slow-start", "6")
    assert ramp.stdout.splitlines()[-1].endswith("(slow start 6, 12, 20); nothing was changed")
    assert refused(lab, "--tag", PROD, "--slow-start", "0").returncode == 2


def test_typos_and_shared_names_are_refused(lab: E2ELab, fleet: dict[str, str]) -> None:
    typo = refused(lab, "--tag", f"{R}-prdo")
    assert typo.returncode == 3
    assert typo.stderr == f"cloudrescue: error: no instance matches --tag {R}-prdo\n"
    assert refused(lab, "--tags", PROD).returncode == 2  # not an option: never ignored
    assert refused(lab, f"{R}-web-9", f"{R}-web-1").returncode == 3
    shared = refused(lab, TWIN, "--status", "ACTIVE")  # a filter does not pick one of them
    assert shared.returncode == 4
    assert (
        f"2 instances are named '{TWIN}'" in shared.stderr and fleet[f"{TWIN}#2"] in shared.stderr
    )


def test_a_cloud_that_ignores_the_tag_filters_is_refused(
    lab: E2ELab, fleet: dict[str, str], tmp_path: Path
) -> None:
    """Below microversion 2.26 nova ignores ``tags`` and shows none: never "every server"."""
    config = yaml.safe_load(Path(lab.env["OS_CLIENT_CONFIG_FILE"]).read_text())
    config["clouds"]["lab"]["compute_api_version"] = "2.25"
    old = tmp_path / "clouds.yaml"
    old.write_text(yaml.safe_dump(config))
    env = {**lab.env, "OS_CLIENT_CONFIG_FILE": str(old)}
    done = refused(lab, "--not-tag", PROD, "--name-regex", f"^{R}-", env=env)
    assert done.returncode == 5
    assert "the cloud does not show server tags" in done.stderr
    assert names(plan(lab, "--name-regex", f"^{R}-web-", env=env)) == [f"{R}-web-1", f"{R}-web-2"]
