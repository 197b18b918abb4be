"""Exit codes of the command line itself (usage errors are 2, --version is 0)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cloudrescue import __version__

CLOUDRESCUE = str(Path(sys.executable).with_name("cloudrescue"))


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLOUDRESCUE, *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert __version__ in result.stdout


@pytest.mark.parametrize(
    "args",
    [("--no-such-option",), ("fix-ssh-keys",), ("no-such-command",), ("console", "log")],
)
def test_usage_errors_exit_2_with_a_short_message(args: tuple[str, ...]) -> None:
    result = run(*args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_unknown_playbook_is_not_found() -> None:
    result = run("playbooks", "show", "no-such-playbook")
    assert result.returncode == 3
    error, hint = result.stderr.strip().splitlines()
    assert error == "cloudrescue: error: no playbook named 'no-such-playbook'"
    assert hint.startswith("hint: shipped: collect-logs,")


def test_a_mistyped_playbook_gets_a_suggestion() -> None:
    result = run("run", "web-1", "fix-sshkeys", "--yes")
    assert result.returncode == 3
    assert result.stderr.splitlines()[0] == (
        "cloudrescue: error: no playbook named 'fix-sshkeys': did you mean 'fix-ssh-keys'"
        " or 'fix-sudoers'?"
    )
