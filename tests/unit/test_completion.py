"""Shell completion (issue 9): commands, options, playbook names and the journal's instances,
answered the way bash asks (``_CLOUDRESCUE_COMPLETE=complete_bash``), by the real CLI."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from cloudrescue.journal import Journal

REPO = Path(__file__).resolve().parents[2]
CLOUDRESCUE = REPO / ".venv/bin/cloudrescue"


def complete(words: str, state_dir: Path) -> list[str]:
    """What bash gets back for the command line ``words`` (the last word being typed)."""
    env = {
        **os.environ,
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1)),
        "_CLOUDRESCUE_COMPLETE": "complete_bash",
        "CLOUDRESCUE_STATE_DIR": str(state_dir),
    }
    result = subprocess.run(
        [str(CLOUDRESCUE)], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    assert not result.stderr
    return result.stdout.split()


@pytest.fixture
def journal_dir(tmp_path: Path) -> Path:
    journal = Journal(tmp_path)
    for name in ("web-1", "web-2", "db\x1b[2J", "db-1"):
        journal.start(cloud="lab", server_id=f"id-{name}", server_name=name, command="rescue")
    return tmp_path


def test_commands_and_options(tmp_path: Path) -> None:
    assert complete("cloudrescue pla", tmp_path) == ["playbooks"]
    assert complete("cloudrescue playbooks ", tmp_path) == ["list", "show", "validate"]
    assert "--dry-run" in complete("cloudrescue fix-ssh-keys web-1 --dr", tmp_path)
    assert complete("cloudrescue status --os-cloud lab --fin", tmp_path) == ["--finished"]


def test_playbook_names(tmp_path: Path) -> None:
    assert complete("cloudrescue run web-1 fix-ss", tmp_path) == [
        "fix-ssh-keys",
        "fix-sshd-config",
    ]


def test_instance_names_come_from_the_journal(journal_dir: Path) -> None:
    assert complete("cloudrescue fix-ssh-keys web", journal_dir) == ["web-2", "web-1"]
    assert complete("cloudrescue resume d", journal_dir) == ["db-1"]  # the escape is left out


def test_no_journal_no_names_and_none_made(tmp_path: Path) -> None:
    assert complete("cloudrescue unrescue ", tmp_path / "state") == []
    assert not (tmp_path / "state").exists()


def test_install_completion_works_in_a_real_bash(tmp_path: Path) -> None:
    """``--install-completion`` as a user runs it, then bash itself completes with it."""
    env = {
        "PATH": f"{CLOUDRESCUE.parent}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "SHELL": "/bin/bash",
    }
    subprocess.run(
        [str(CLOUDRESCUE), "--install-completion"],
        env=env,
        capture_output=True,
        timeout=60,
        check=True,
    )
    script = (
        "source ~/.bashrc; COMP_WORDS=(cloudrescue playbooks sh); COMP_CWORD=2; "
        '_cloudrescue_completion cloudrescue; printf "%s\\n" "${COMPREPLY[@]}"'
    )
    result = subprocess.run(
        ["bash", "--norc", "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.split() == ["show"]
