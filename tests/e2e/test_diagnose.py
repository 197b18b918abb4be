"""``cloudrescue diagnose`` without rescue against the lab's breaks (issue 12).

Each scenario breaks a fresh instance of its own (all booted, broken and diagnosed in
parallel, once for the module); ``diagnose NAME -f json`` must name the scenario's playbook
first, with evidence, for every scenario the console and the probes can tell apart, and must
find nothing on a healthy instance. ``root-password`` and ``sudoers`` cannot be told apart
from outside: the console shows a normal boot and sshd accepts the key (the passwords and the
sudoers files are on the disk), so for them "no problem found" is the honest answer here;
``--deep`` (one rescue, the disk read-only, the playbooks in check mode, the passwords and
cloud-init's state read) sees them, and ``--fix`` applies what a diagnosis suggests in one
rescue; after it, the repaired instance is diagnosed healthy.
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

from tests.lab.labkit import key_login

from .conftest import E2ELab

pytestmark = pytest.mark.lab

# scenario -> the top finding's playbook without rescue (None: not told apart from healthy)
EXPECTED: dict[str, str | None] = {
    "lost-key": "fix-ssh-keys",
    "ssh-symlink": "fix-ssh-keys",
    "bad-perms": "fix-ssh-keys",
    "authorized-keys-file": "fix-ssh-keys",
    "sshd-config": "fix-sshd-config",
    "firewall": "fix-firewall",
    "fstab": "fix-fstab",
    "root-password": None,
    "disk-full": "disk-full",
    "network": "fix-network",
    "sudoers": None,
}
ISSUE_SCENARIOS = (  # the ten of issue 12
    "lost-key", "ssh-symlink", "bad-perms", "sshd-config", "firewall", "fstab",
    "root-password", "disk-full", "network", "sudoers",
)  # fmt: skip
HEALTHY = "healthy"


@pytest.fixture(scope="module")
def diagnosed(lab: E2ELab) -> Iterator[dict[str, tuple[str, dict[str, Any]]]]:
    """Every scenario (and a healthy instance) on an instance of its own, diagnosed:
    scenario -> (instance name, the ``-f json`` record)."""
    tag = f"dg{uuid.uuid4().hex[:6]}"
    scenarios = [*EXPECTED, HEALTHY]
    names = {scenario: f"{tag}-{scenario}" for scenario in scenarios}
    with ThreadPoolExecutor(len(scenarios)) as pool:
        views = list(pool.map(lambda name: lab.add(name=name), names.values()))
        broken = [s for s in scenarios if s != HEALTHY]
        list(pool.map(lambda s: lab.break_(names[s], s), broken))
        runs = dict(zip(scenarios, pool.map(lambda s: diagnose(lab, names[s]), scenarios),
                        strict=True))
    try:
        yield {scenario: (names[scenario], runs[scenario]) for scenario in scenarios}
    finally:
        for view in views:
            lab.admin.call("DELETE", f"/instances/{view['id']}")


def diagnose(lab: E2ELab, name: str, *args: str, timeout: float = 60) -> dict[str, Any]:
    result = lab.cli("diagnose", name, "--key", f"{lab.key}.pub", "-f", "json", *args,
                     timeout=timeout)
    assert result.returncode == 0, result.stderr
    record: dict[str, Any] = json.loads(result.stdout)
    return record


@pytest.mark.parametrize("scenario", [s for s, playbook in EXPECTED.items() if playbook])
def test_the_top_finding_names_the_playbook_with_evidence(
    diagnosed: dict[str, tuple[str, dict[str, Any]]], scenario: str
) -> None:
    name, record = diagnosed[scenario]
    playbook = EXPECTED[scenario]
    assert record["playbook"] == playbook, record["findings"]
    top = record["findings"][0]
    assert top["rank"] == 1 and top["evidence"]
    assert top["command"] == record["command"]
    assert record["command"].startswith(f"cloudrescue run {name} {playbook}")
    assert not record["healthy"]
    assert record["seconds"] < 10


def test_a_healthy_instance_gets_no_problem_found_and_no_suggestion(
    diagnosed: dict[str, tuple[str, dict[str, Any]]],
) -> None:
    _, record = diagnosed[HEALTHY]
    assert record["healthy"] and record["findings"] == []
    assert record["command"] is None and record["playbook"] is None
    [probe] = record["probes"]
    assert probe["state"] == "open" and probe["auth_methods"] == ["publickey"]
    assert [key["accepted"] for key in probe["keys"]] == [True]
    # the user is the one cloud-init's table of authorized keys named (the first boot's)
    assert record["user"] == "debian" and not record["user_guessed"]
    assert record["user_source"].startswith("cloud-init's table of authorized keys (console line")


@pytest.mark.parametrize("scenario", [s for s, playbook in EXPECTED.items() if not playbook])
def test_what_only_the_disk_shows_is_not_guessed(
    diagnosed: dict[str, tuple[str, dict[str, Any]]], scenario: str
) -> None:
    _, record = diagnosed[scenario]
    assert record["healthy"] and record["command"] is None


def test_at_least_six_of_the_ten_scenarios_are_told_apart_without_rescue(
    diagnosed: dict[str, tuple[str, dict[str, Any]]],
) -> None:
    right = [s for s in ISSUE_SCENARIOS if diagnosed[s][1]["playbook"] == EXPECTED[s]
             and EXPECTED[s] is not None]
    assert len(right) >= 6, right


def test_the_evidence_is_the_console_line_and_the_probe(
    diagnosed: dict[str, tuple[str, dict[str, Any]]],
) -> None:
    _, record = diagnosed["sshd-config"]
    evidence = record["findings"][0]["evidence"]
    lines = [item for item in evidence if item["source"] == "console"]
    assert any("Bad configuration option: PasswordAuthentcation" in item["text"]
               for item in lines)
    assert all(isinstance(item["line"], int) and item["line"] > record["boot_line"] - 1
               for item in lines)
    assert any(item["source"] == "probe" and "refused" in item["text"] for item in evidence)
    _, record = diagnosed["network"]
    texts = [item["text"] for item in record["findings"][0]["evidence"]]
    assert any("192.168.100.10" in text for text in texts)


def test_for_people_the_table_then_the_evidence_then_the_command(
    lab: E2ELab, diagnosed: dict[str, tuple[str, dict[str, Any]]],
) -> None:
    name, _ = diagnosed["fstab"]
    shown: subprocess.CompletedProcess[str] = lab.cli("diagnose", name, timeout=60)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].startswith(f"{name} (ACTIVE, ")
    assert lines[1].split()[:3] == ["#", "confidence", "cause"]
    assert "Dependency failed for local-fs.target" in shown.stdout
    assert lines[-1] == f"run: cloudrescue run {name} fix-fstab"


def test_deep_sees_on_the_disk_what_the_console_and_the_probes_cannot(lab: E2ELab) -> None:
    name = lab.add()["name"]
    lab.break_(name, "sudoers")
    result = lab.cli("diagnose", name, "--key", f"{lab.key}.pub", "--deep", "--yes",
                     "-f", "json", timeout=300)
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["playbook"] == "fix-sudoers", record["findings"]
    assert record["command"] == f"cloudrescue run {name} fix-sudoers"
    top = record["findings"][0]
    assert top["confidence"] == "high"
    texts = [item["text"] for item in top["evidence"] if item["source"] == "deep"]
    assert any(text.startswith("/etc/sudoers.d/90-cloud-init-users: ") and "0666" in text
               for text in texts), texts
    assert any(text.startswith("/etc/sudoers.d/99-deploy: ") for text in texts), texts
    # one rescue, read-only: the disk is as the break left it, the instance back; the
    # passwords and cloud-init's state were read too, and are fine
    cleared = [note for note in record["notes"] if note.startswith("deep: nothing to change for ")]
    assert cleared and all(name in cleared[0] for name in
                           ("fix-fstab", "reset-password", "reset-cloud-init")), record["notes"]
    assert "deep: the cloud user is debian (from the account with SSH keys, " \
        "/home/debian/.ssh/authorized_keys)" in record["notes"]
    finished = json.loads(lab.cli("status", "--finished", "-f", "json").stdout)
    assert [row["state"] for row in finished if row["instance"] == name] == ["restored"]


PLANT_ERRORS = """\
name: plant-cloud-init-errors
description: cloud-init's last run ended in errors, as its result.json says (a test's own).
steps:
  - name: Write cloud-init's result
    action: ensure_line
    path: /var/lib/cloud/data/result.json
    line: '{"v1": {"datasource": "DataSourceOpenStack", "errors": ["(ssh, KeyError())"] } }'
    create: true
"""


def test_deep_reads_the_passwords_and_cloud_init_and_takes_the_rescue_options(
    lab: E2ELab, tmp_path: Path,
) -> None:
    name = lab.add()["name"]
    lab.break_(name, "root-password")
    plant = tmp_path / "plant.yaml"
    plant.write_text(PLANT_ERRORS)
    planted = lab.cli("run", name, str(plant), "--yes", timeout=300)
    assert planted.returncode == 0, planted.stderr
    # the rescue options are RescueOptions', taken whole (as every rescuing command's)
    result = lab.cli("diagnose", name, "--key", f"{lab.key}.pub", "--deep", "--yes",
                     "--host-key-timeout", "120", "--ssh-timeout", "120", "--timeout", "300",
                     "-f", "json", timeout=300)
    assert result.returncode == 0, result.stderr
    assert "$" not in result.stdout  # no hash of /etc/shadow, nor any of its fields but dates
    record = json.loads(result.stdout)
    assert record["playbook"] == "reset-password", record["findings"]
    top, second = record["findings"][:2]
    assert top["confidence"] == "medium"
    assert [item["text"] for item in top["evidence"]] == [
        f"/etc/shadow: {user}: set, expired: it must be changed at the next login "
        "(last change 0)" for user in ("root", "debian")
    ]
    assert second["playbook"] == "reset-cloud-init"
    assert second["cause"] == "cloud-init's last run ended with 1 error"
    assert [item["text"] for item in second["evidence"]] == [
        "/var/lib/cloud/data: (ssh, KeyError())"]


def test_fix_applies_the_suggestion_and_the_instance_answers_again(lab: E2ELab) -> None:
    instance = lab.add()
    name, address = instance["name"], instance["address"]
    lab.break_(name, "fstab")
    assert key_login(address, "debian", lab.key) != "ok"
    result = lab.cli("diagnose", name, "--key", f"{lab.key}.pub", "--fix", "--yes",
                     timeout=300)
    assert result.returncode == 0, result.stderr
    shown = result.stdout.splitlines()
    assert shown[0].startswith(f"{name} (ACTIVE, ")
    assert f"run: cloudrescue run {name} fix-fstab" in shown
    assert shown[-1] == f"{name} is ACTIVE again."
    assert f"fix-fstab on {name}: 1 changed, 0 ok, 0 skipped." in shown
    assert any("rewrote /etc/fstab" in line for line in shown)
    assert key_login(address, "debian", lab.key) == "ok"
    # the repaired entry is nofail: its device still times out at boot, and the boot goes on;
    # the console's latest boot shows it, and it is no problem any more
    again = diagnose(lab, name)
    assert again["healthy"] and again["findings"] == [], again["findings"]
    console = lab.cli("console", "log", name).stdout
    assert console.count("Timed out waiting for device") >= 2  # the broken boot and this one


# scenario -> the top finding's playbook with --deep: every one told apart
DEEP_EXPECTED: dict[str, str | None] = {
    **EXPECTED, "root-password": "reset-password", "sudoers": "fix-sudoers", HEALTHY: None,
}  # fmt: skip


@pytest.fixture(scope="module")
def deep_diagnosed(
    lab: E2ELab, diagnosed: dict[str, tuple[str, dict[str, Any]]]
) -> dict[str, dict[str, Any]]:
    """``diagnose --deep`` on the module's broken (and healthy) instances, a few at a time
    (last in the module: each one is rescued and back, its disk read-only)."""

    def deep(scenario: str) -> dict[str, Any]:
        return diagnose(lab, diagnosed[scenario][0], "--deep", "--yes", timeout=300)

    with ThreadPoolExecutor(4) as pool:
        return dict(zip(DEEP_EXPECTED, pool.map(deep, DEEP_EXPECTED), strict=True))


@pytest.mark.parametrize("scenario", list(DEEP_EXPECTED))
def test_with_deep_every_scenario_is_told_apart_and_the_healthy_one_left_alone(
    deep_diagnosed: dict[str, dict[str, Any]], scenario: str
) -> None:
    record = deep_diagnosed[scenario]
    playbook = DEEP_EXPECTED[scenario]
    assert record["playbook"] == playbook, (record["findings"], record["notes"])
    if playbook is None:
        assert record["healthy"] and record["findings"] == [] and record["command"] is None
    else:
        top = record["findings"][0]
        assert top["confidence"] in ("high", "medium") and top["evidence"]
        assert record["command"].startswith(f"cloudrescue run {record['instance']} {playbook}")
