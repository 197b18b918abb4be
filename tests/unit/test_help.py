"""Help that reads well and costs little (issue 9): every command's ``--help`` shows no type
noise, and ``--help`` imports neither the playbook schema (pydantic, yaml) nor the cloud and
SSH libraries. Both run the real CLI in a subprocess."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer.core
import typer.main

from cloudrescue.cli import register_commands

from .test_first_run import commands

REPO = Path(__file__).resolve().parents[2]
HEAVY = (
    "pydantic",
    "yaml",
    "paramiko",
    "openstack",
    "keystoneauth1",
    "cloudrescue.playbook.schema",
    "cloudrescue.playbook.catalog",
)
# What Typer or click print when a parameter has no metavar: its Python or click type.
NOISE = re.compile(r"<[a-z][\w\[\], ]*>|\b(BOOLEAN|INTEGER|FLOAT|TEXT|PATH|FILENAME)\b|list\[")
PROBE = """
import contextlib, io, json, sys
from cloudrescue.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    try:
        main(sys.argv[1:])
    except SystemExit:
        pass
print(json.dumps(sorted(sys.modules)))
"""


def every_command() -> list[str]:
    root = typer.main.get_command(register_commands())
    assert isinstance(root, typer.core.TyperGroup)
    return ["", "playbooks", "console", "lab", "fleet", *commands(root)]


def help_text(command: str) -> str:
    result = subprocess.run(
        [str(REPO / ".venv/bin/cloudrescue"), *command.split(), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={"COLUMNS": "100", "PATH": "/usr/bin:/bin"},
    )
    return result.stdout


@pytest.mark.parametrize("command", every_command())
def test_help_shows_no_type_noise(command: str) -> None:
    shown = help_text(command)
    assert shown.startswith("Usage: cloudrescue"), shown
    assert not NOISE.search(shown), NOISE.search(shown)


@pytest.mark.parametrize(
    "command",
    [
        "", "run", "fix-ssh-keys", "reset-password", "lab", "status", "fleet plan", "fleet run",
        "diagnose",
    ],
)
def test_help_imports_nothing_heavy(command: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *command.split(), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    loaded = set(json.loads(result.stdout))
    assert not {name for name in HEAVY if name in loaded}
