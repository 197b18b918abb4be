"""`cloudrescue fleet fix-ssh-keys` on the lab (issue 10): a broken fleet repaired several at a
time, one bad apple reported without hiding the others, the error budget and the canary
batch, Ctrl-C and ``kill -9`` mid-run then ``fleet resume --continue``. Every repaired
instance is proven through its own sshd (host key pinned), and no instance is left in RESCUE.

The bad apples: an instance in ERROR (``os-resetState``), which nova refuses to rescue (409);
the lab faults ``rescue_fails`` (the compute fails the rescue) and ``ssh_cut`` (the rescue
system cannot be reached over SSH), one instance each; and a 429 storm on the compute API.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.lab.labkit import key_login

from .conftest import E2ELab

pytestmark = pytest.mark.lab
KEYS = "home/debian/.ssh/authorized_keys"


def booted(lab: E2ELab, names: list[str], tag: str) -> dict[str, dict[str, Any]]:
    """Instances named ``names`` with ``tag``, booted in parallel: name -> view."""
    with ThreadPoolExecutor(len(names)) as pool:
        views = list(pool.map(lambda name: lab.add(name=name, tags=[tag]), names))
    return {view["name"]: view for view in views}


def in_error(lab: E2ELab, server_id: str) -> None:
    import openstack
    from openstack.config import OpenStackConfig

    config = OpenStackConfig(
        config_files=[lab.env["OS_CLIENT_CONFIG_FILE"]], load_envvars=False
    )  # this process's OS_* (a developer's shell) must not choose another cloud
    conn = openstack.connection.Connection(config=config.get_one("lab"))
    conn.compute.reset_server_state(server_id, "error")


def status_of(lab: E2ELab, server_id: str) -> str:
    [view] = [i for i in lab.admin.instances() if i["id"] == server_id]
    return f"{view['status']}/{view.get('task_state') or '-'}"


def none_in_rescue(lab: E2ELab, views: dict[str, dict[str, Any]]) -> None:
    states = {name: status_of(lab, view["id"]) for name, view in views.items()}
    assert not [name for name, state in states.items() if "RESCUE" in state], states


def key_count(lab: E2ELab, server_id: str, key: Path) -> int:
    blob = Path(f"{key}.pub").read_text().split()[1]
    text = (lab.system_root(server_id) / KEYS).read_text()
    return sum(1 for line in text.splitlines() if blob in line)


def fleet(lab: E2ELab, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return lab.cli("fleet", *args, timeout=timeout)


@pytest.fixture(scope="module")
def broken(lab: E2ELab) -> Iterator[tuple[str, dict[str, dict[str, Any]]]]:
    """Twelve instances of one tag: seven lost their key, four have bad permissions, and the
    first by name is in ERROR (its rescue is refused)."""
    tag = f"fr{uuid.uuid4().hex[:6]}"
    names = [f"{tag}-{n:02d}" for n in range(1, 13)]
    views = booted(lab, names, tag)
    breakage = [(name, "lost-key") for name in names[1:8]]
    breakage += [(name, "bad-perms") for name in names[8:]]
    with ThreadPoolExecutor(6) as pool:
        list(pool.map(lambda broken: lab.break_(*broken), breakage))
    in_error(lab, views[names[0]]["id"])
    try:
        yield tag, views
    finally:
        for view in views.values():
            lab.admin.call("DELETE", f"/instances/{view['id']}")


def test_a_broken_fleet_is_repaired_and_the_bad_apples_reported(
    lab: E2ELab, broken: tuple[str, dict[str, dict[str, Any]]], tmp_path: Path
) -> None:
    """Twelve instances through a 429 storm: the one in ERROR is refused, one's rescue fails
    in the compute (it ends in ERROR, as nova leaves it), one's rescue cannot be reached over
    SSH (it is unrescued, ACTIVE); the nine others are repaired, each proven through its own
    sshd, every key present once, and a second run changes nothing."""
    tag, views = broken
    names = sorted(views)
    cut, failing, healthy = names[1], names[2], names[3:]
    for name in names[1:]:
        assert key_login(views[name]["address"], "debian", lab.key) == "key refused"
    dry = fleet(lab, "fix-ssh-keys", *healthy[:2], "--key", f"{lab.key}.pub", "--yes",
                "--dry-run", "-f", "json")  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    assert [row["result"] for row in json.loads(dry.stdout)] == ["changed", "changed"]
    for name in healthy[:2]:  # check mode: nothing written
        assert key_login(views[name]["address"], "debian", lab.key) == "key refused"
    report = tmp_path / "report.json"
    storm = {"count": 4, "retry_after": 1, "path_regex": "/action$", "action": "rescue"}
    # 6 s from RESCUE to the rescue's host-key block (a cloud's rescue takes longer still):
    # with a dozen rescues on this machine's two cores, a worker may see RESCUE a few seconds
    # late: a block printed before it looks is refused, as it must be, and that instance is
    # rescued once more
    lab.faults(ssh_cut=[cut], rescue_fails=[failing], api_rate_limit=storm, announce_delay=6)
    try:
        done = fleet(lab, "fix-ssh-keys", "--tag", tag, "--key", f"{lab.key}.pub", "--yes",
                     "--concurrency", "6", "--ssh-timeout", "15",
                     "--report", str(report))  # fmt: skip
    finally:
        lab.faults(ssh_cut=None, rescue_fails=None, api_rate_limit=None, announce_delay=None)
    assert done.returncode == 12, done.stderr  # PARTIAL
    assert done.stderr.rstrip().splitlines()[-2].startswith("cloudrescue: error: fleet run f")
    assert "9 changed, 3 failed" in done.stderr
    assert "-> 429" in (lab.state / "daemon.log").read_text()  # the storm happened
    rows = {row["instance"]: row for row in json.loads(report.read_text())}
    assert [rows[name]["result"] for name in names] == ["failed"] * 3 + ["changed"] * 9
    assert rows[names[0]]["exit_status"] in ("CONFLICT", "CLOUD"), rows[names[0]]
    assert rows[cut]["exit_status"] == "CONNECTION", rows[cut]
    assert rows[failing]["exit_status"] == "CLOUD" and "ERROR" in rows[failing]["error"]
    assert status_of(lab, views[names[0]]["id"]) == "ERROR/-"  # untouched
    assert status_of(lab, views[cut]["id"]) == "ACTIVE/-"  # unrescued
    assert status_of(lab, views[failing]["id"]) == "ERROR/-"  # as nova leaves a failed rescue
    for name in healthy:
        assert key_login(views[name]["address"], "debian", lab.key) == "ok", name
        assert key_count(lab, views[name]["id"], lab.key) == 1
        assert rows[name]["stages"][0]["stage"].startswith("asking")
    none_in_rescue(lab, views)
    assert "No rescue in flight" in lab.cli("status").stdout

    fleet_id = rows[names[0]]["fleet_id"]
    shown = json.loads(fleet(lab, "show", fleet_id, "-f", "json").stdout)
    assert [row["result"] for row in shown] == ["failed"] * 3 + ["changed"] * 9
    assert all(row["rescue"] is None for row in shown)
    listed = json.loads(fleet(lab, "list", "-f", "json").stdout)
    assert {"fleet_id": fleet_id, "state": "finished"}.items() <= next(
        run for run in listed if run["fleet_id"] == fleet_id
    ).items()

    again = fleet(lab, "fix-ssh-keys", *healthy, "--key", f"{lab.key}.pub", "--yes",
                  "-f", "json", "-c", "instance", "-c", "result")  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert {row["result"] for row in json.loads(again.stdout)} == {"ok"}
    for name in healthy:
        assert key_count(lab, views[name]["id"], lab.key) == 1


@pytest.mark.parametrize(
    "pacing", [("--max-errors", "0", "--concurrency", "1"), ("--batches", "1,2")]
)
def test_a_first_failure_stops_the_run(
    lab: E2ELab, broken: tuple[str, dict[str, dict[str, Any]]], pacing: tuple[str, ...]
) -> None:
    """The bad apple comes first (by name): ``--max-errors 0`` or a canary batch of one stops
    the run there, the rest not started and untouched."""
    tag, views = broken
    done = fleet(lab, "fix-ssh-keys", "--tag", tag, "--key", f"{lab.key}.pub", "--yes",
                 "-f", "json", *pacing)  # fmt: skip
    assert done.returncode == 12, done.stderr
    results = [row["result"] for row in json.loads(done.stdout)]
    assert results == ["failed"] + ["not-started"] * 11
    assert "--max-errors 0" in done.stderr or "batch 1 did not succeed" in done.stderr
    none_in_rescue(lab, views)


def _wait_for_rescue(lab: E2ELab, ids: set[str], deadline: float) -> None:
    while time.monotonic() < deadline:
        if any(status_of(lab, server_id).startswith("RESCUE") for server_id in ids):
            return
        time.sleep(0.3)
    raise AssertionError("no instance reached RESCUE")


@pytest.mark.parametrize("how", ["sigint", "kill"])
def test_interrupted_then_resumed_leaves_nothing_in_rescue(lab: E2ELab, how: str) -> None:
    """SIGINT (Ctrl-C) or SIGKILL while instances are in rescue; then ``fleet resume RUN
    --continue`` unrescues what was left and repairs the rest: every key exactly once."""
    tag = f"fk{uuid.uuid4().hex[:6]}"
    views = booted(lab, [f"{tag}-{n}" for n in range(1, 5)], tag)
    for name in views:
        lab.break_(name, "lost-key")
    try:
        process = lab.popen("fleet", "fix-ssh-keys", "--tag", tag, "--key", f"{lab.key}.pub",
                            "--yes", "--concurrency", "2")  # fmt: skip
        _wait_for_rescue(lab, {view["id"] for view in views.values()}, time.monotonic() + 120)
        process.send_signal(signal.SIGINT if how == "sigint" else signal.SIGKILL)
        _, stderr = process.communicate(timeout=300)
        if how == "sigint":
            assert process.returncode == 130, stderr
            assert "interrupted: restoring the" in stderr
            none_in_rescue(lab, views)
        else:
            assert process.returncode == -signal.SIGKILL
        [run] = [r for r in json.loads(fleet(lab, "list", "-f", "json").stdout)
                 if r["command"] == "fix-ssh-keys" and r["instances"] == 4][:1]  # fmt: skip
        assert run["state"] == ("interrupted" if how == "sigint" else "died"), run
        resumed = fleet(lab, "resume", run["fleet_id"], "--continue", "--yes", "-f", "json")
        assert resumed.returncode == 0, resumed.stderr
        rows = json.loads(resumed.stdout)
        assert rows and {row["result"] for row in rows} <= {"changed", "ok"}
        none_in_rescue(lab, views)
        for view in views.values():
            assert key_login(view["address"], "debian", lab.key) == "ok"
            assert key_count(lab, view["id"], lab.key) == 1
        shown = json.loads(fleet(lab, "show", run["fleet_id"], "-f", "json").stdout)
        assert {row["result"] for row in shown} <= {"changed", "ok"}, shown
        assert "No rescue in flight" in lab.cli("status").stdout
        again = fleet(lab, "resume", run["fleet_id"], "--continue", "--yes")
        assert again.returncode == 2 and "nothing to continue" in again.stderr
    finally:
        for view in views.values():
            lab.admin.call("DELETE", f"/instances/{view['id']}")
