"""The first run (issue 9): every command, with an empty ``$HOME`` and no ``OS_*`` variable.

No clouds.yaml, no journal, no lab: the most common first contact with the tool. Each command
either does its job (the ones that need no cloud) or says in one ``cloudrescue: error:`` line
(a ``hint:`` line may follow) why it cannot, with a documented exit status: never a
traceback, a warning, or a blank line from a progress display. The table below must name
every command of the CLI, so a new command fails here until its first run is checked.
"""

from __future__ import annotations

import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import typer.core
import typer.main

from cloudrescue.cli import register_commands
from cloudrescue.errors import ExitStatus

REPO = Path(__file__).resolve().parents[2]
CLOUDRESCUE = REPO / ".venv/bin/cloudrescue"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA me\n"

# command path -> (arguments, the exit status of a first run)
FIRST_RUN: dict[str, tuple[str, ExitStatus]] = {
    "rescue": ("web-1 --yes", ExitStatus.USAGE),
    "unrescue": ("web-1 --yes", ExitStatus.USAGE),
    "shell": ("web-1 --yes --command true", ExitStatus.USAGE),
    "status": ("", ExitStatus.SUCCESS),  # the journal is empty; the cloud is "not checked"
    "resume": ("--yes", ExitStatus.SUCCESS),  # nothing to resume
    "run": ("web-1 fix-firewall --yes", ExitStatus.USAGE),
    "fix-ssh-keys": ("web-1 --key me.pub --yes", ExitStatus.USAGE),
    "reset-password": ("web-1 --password-stdin --yes", ExitStatus.USAGE),
    "playbooks list": ("", ExitStatus.SUCCESS),
    "playbooks show": ("fix-ssh-keys", ExitStatus.SUCCESS),
    "playbooks validate": ("playbooks/fix-firewall.yaml", ExitStatus.SUCCESS),
    "diagnose": ("web-1", ExitStatus.USAGE),  # no cloud configured
    "console log": ("web-1", ExitStatus.USAGE),
    "console url": ("web-1", ExitStatus.USAGE),
    "fleet plan": ("--all", ExitStatus.USAGE),  # no cloud configured
    "fleet diagnose": ("--all", ExitStatus.USAGE),  # no cloud configured
    "fleet run": ("fix-firewall --all --yes", ExitStatus.USAGE),
    "fleet fix-ssh-keys": ("--all --key me.pub --yes", ExitStatus.USAGE),
    "fleet reset-password": ("--all --password-stdin --yes", ExitStatus.USAGE),  # no password
    "fleet list": ("", ExitStatus.SUCCESS),  # no fleet run yet
    "fleet show": ("f0123456789", ExitStatus.NOT_FOUND),
    "fleet resume": ("f0123456789 --yes", ExitStatus.NOT_FOUND),
    "lab down": ("", ExitStatus.CONFLICT),  # already down
    "lab status": ("", ExitStatus.NOT_FOUND),
    "lab add": ("", ExitStatus.NOT_FOUND),
    "lab bastion": ("", ExitStatus.NOT_FOUND),
    "lab break": ("web-1 lost-key", ExitStatus.NOT_FOUND),
    "lab faults": ("", ExitStatus.NOT_FOUND),
    "lab ssh": ("web-1", ExitStatus.NOT_FOUND),
    "ovh login": ("--show-consumer-key", ExitStatus.USAGE),  # no OVH API endpoint configured
}
# `lab up` really starts a lab on a first run (tests/lab and tests/e2e run it).
NOT_RUN_HERE = {"lab up"}


def commands(group: typer.core.TyperGroup, prefix: str = "") -> list[str]:
    """Every leaf command of the CLI, as the words that name it."""
    found: list[str] = []
    for name, command in sorted(group.commands.items()):
        path = f"{prefix}{name}"
        if isinstance(command, typer.core.TyperGroup):
            found += commands(command, f"{path} ")
        else:
            found.append(path)
    return found


def test_the_table_names_every_command() -> None:
    root = typer.main.get_command(register_commands())
    assert isinstance(root, typer.core.TyperGroup)
    every = set(commands(root))
    assert set(FIRST_RUN) | NOT_RUN_HERE == every


def first_run(command: str, root: Path) -> subprocess.CompletedProcess[str]:
    home = root / "home"
    home.mkdir(parents=True)
    (root / "me.pub").write_text(KEY)
    keep = ("PATH", "LANG", "LC_ALL", "TZ")
    env = {name: os.environ[name] for name in keep if name in os.environ}
    env.update(
        HOME=str(home),
        CLOUDRESCUE_STATE_DIR=str(root / "state"),
        CLOUDRESCUE_LAB_DIR=str(root / "lab"),
        XDG_CACHE_HOME=str(root / "cache"),
    )
    arguments, _ = FIRST_RUN[command]
    argv = [*command.split(), *arguments.split()]
    return subprocess.run(
        [str(CLOUDRESCUE), *argv],
        input="",
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO if command == "playbooks validate" else root,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, subprocess.CompletedProcess[str]]:
    """Every command's first run, in parallel (each is a subprocess of ~0.3-1 s)."""
    base = tmp_path_factory.mktemp("first-run")
    with ThreadPoolExecutor(max_workers=max(4, 2 * (os.cpu_count() or 1))) as pool:
        futures = {
            command: pool.submit(first_run, command, base / f"run-{number}")
            for number, command in enumerate(FIRST_RUN)
        }
        return {command: future.result() for command, future in futures.items()}


@pytest.mark.parametrize("command", list(FIRST_RUN))
def test_first_run(runs: dict[str, subprocess.CompletedProcess[str]], command: str) -> None:
    result = runs[command]
    _, expected = FIRST_RUN[command]
    assert result.returncode == expected, result.stderr
    lines = result.stderr.splitlines()
    assert "Traceback" not in result.stderr and "Warning" not in result.stderr, result.stderr
    assert all(line.strip() for line in lines), f"blank line on stderr: {result.stderr!r}"
    errors = [line for line in lines if line.startswith("cloudrescue: error: ")]
    if expected == ExitStatus.SUCCESS:
        assert not errors, result.stderr
        return
    assert len(errors) == 1 and lines[0] == errors[0], result.stderr
    assert all(line.startswith("hint: ") for line in lines[1:]), result.stderr
    assert not result.stdout
