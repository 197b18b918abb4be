"""Each user-facing failure: one line, its documented exit status, and nothing changed."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.lab.labkit import key_login

from .conftest import E2ELab
from .test_fix_ssh_keys import status_of

pytestmark = pytest.mark.lab


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("cloudrescue: error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_unknown_instance(lab: E2ELab) -> None:
    result = lab.cli("fix-ssh-keys", "no-such-instance", "--key", f"{lab.key}.pub", "--yes")
    assert result.returncode == 3
    assert "no instance named or with id 'no-such-instance'" in one_error_line(result)


def test_ambiguous_name_lists_candidates(lab: E2ELab) -> None:
    first = lab.add(name="twin")
    second = lab.add(name="twin")
    result = lab.cli("status", "twin")
    assert result.returncode == 4
    line = one_error_line(result)
    assert first["id"] in line and second["id"] in line


def test_bad_key_file_touches_nothing(lab: E2ELab, tmp_path: Path) -> None:
    instance = lab.add()
    bad = tmp_path / "bad.pub"
    bad.write_text("ssh-ed25519 not-base64!\n")
    result = lab.cli("fix-ssh-keys", instance["name"], "--key", str(bad), "--yes")
    assert result.returncode == 2
    assert "not valid base64" in one_error_line(result)
    assert status_of(lab, instance["name"]) == "ACTIVE/-"
    assert "No rescue in flight" in lab.cli("status").stdout


@pytest.mark.parametrize(
    "command",
    [
        ("fix-ssh-keys", "{name}", "--key", "{key}"),
        ("rescue", "{name}"),
        ("unrescue", "{name}"),
        ("resume", "{name}"),
        ("run", "{name}", "fix-firewall"),
    ],
    ids=lambda command: command[0],
)
def test_no_terminal_needs_yes(lab: E2ELab, command: tuple[str, ...]) -> None:
    """Every command that reboots an instance asks first, and refuses without a terminal."""
    instance = lab.add()
    words = [word.format(name=instance["name"], key=f"{lab.key}.pub") for word in command]
    result = lab.cli(*words)
    assert result.returncode == 2
    assert "pass --yes" in one_error_line(result)
    assert status_of(lab, instance["name"]) == "ACTIVE/-"


def test_wrong_state_held_rescue(lab: E2ELab) -> None:
    instance = lab.add()
    held = lab.cli("rescue", instance["name"], "--key", f"{lab.key}.pub", "--yes")
    assert held.returncode == 0, held.stderr
    assert "is in rescue" in held.stdout and "root password hidden" not in held.stdout
    result = lab.cli("fix-ssh-keys", instance["name"], "--key", f"{lab.key}.pub", "--yes")
    assert result.returncode == 4
    assert "while it is in vm_state rescued" in one_error_line(result)
    assert status_of(lab, instance["name"]) == "RESCUE/-"
    left = lab.cli("unrescue", instance["name"], "--yes")
    assert left.returncode == 0, left.stderr
    assert key_login(instance["address"], "debian", lab.key) == "ok"
    again = lab.cli("unrescue", instance["name"], "--yes")
    assert again.returncode == 4 and "is not in rescue" in one_error_line(again)


def test_unreachable_rescue_is_unrescued(lab: E2ELab) -> None:
    instance = lab.add()
    unused = instance["address"].rsplit(".", 1)[0] + ".254"
    result = lab.cli(
        "fix-ssh-keys",
        instance["name"],
        "--key",
        f"{lab.key}.pub",
        "--yes",
        "--address",
        unused,
        "--ssh-timeout",
        "3",
    )
    assert result.returncode == 7
    assert f"cannot reach the rescue system at root@{unused}" in one_error_line(result)
    assert status_of(lab, instance["name"]) == "ACTIVE/-"
    assert "No rescue in flight" in lab.cli("status").stdout


def test_no_such_disk_is_unrescued(lab: E2ELab) -> None:
    instance = lab.add()
    result = lab.cli(
        "fix-ssh-keys", instance["name"], "--key", f"{lab.key}.pub", "--yes", "--disk", "/dev/nope"
    )
    assert result.returncode == 9, result.stderr
    one_error_line(result)
    assert status_of(lab, instance["name"]) == "ACTIVE/-"
    assert key_login(instance["address"], "debian", lab.key) == "ok"


def test_a_region_the_cloud_does_not_have_is_one_line(lab: E2ELab) -> None:
    instance = lab.add()
    wrong = lab.cli("status", instance["name"], "--os-region-name", "GRA11")
    assert wrong.returncode == 2
    assert "Region GRA11 is not a valid region name for cloud lab" in one_error_line(wrong)
    right = lab.cli("status", instance["name"], "-f", "json", "--os-region-name", "RegionOne")
    assert right.returncode == 0, right.stderr
    assert json.loads(right.stdout) == []  # not in rescue, not marked: no row
