"""Docs and help are generated from the declarations and must not drift from them."""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path

import pytest
import typer
from rich.markup import escape

from cloudrescue.cli import fleet, run
from cloudrescue.cli.options import RateOptions, RepairOptions, RescueOptions, SelectionOptions
from cloudrescue.cli.output import OutputOptions
from cloudrescue.playbook import SHORT_COMMANDS, catalog, docs
from cloudrescue.playbook.actions import ACTIONS
from cloudrescue.playbook.docs import command_help, option_flag, option_help

REPO = Path(__file__).parents[2]
CLOUDRESCUE = str(REPO / ".venv/bin/cloudrescue")


def test_reference_docs_are_up_to_date() -> None:
    committed = (REPO / "docs/playbooks.md").read_text()
    assert committed == docs.reference(), (
        "docs/playbooks.md is out of date: "
        "run `python -m cloudrescue.playbook.docs > docs/playbooks.md`"
    )


def test_reference_covers_every_playbook_action_and_field() -> None:
    text = docs.reference()
    for name in catalog.shipped_names():
        assert f"### {name}\n" in text
    for action in ACTIONS.values():
        assert f"### {action.name}\n\n{action.heading}\n" in text
        for field in action.params.model_fields:
            assert f"| `{field}` |" in text


def named_fix(name: str) -> typer.core.TyperCommand:
    """The click command of a named fix, as the root app registers it."""
    root = typer.Typer()
    run.register(root)
    group = typer.main.get_command(root)
    assert isinstance(group, typer.core.TyperGroup)
    command = group.commands[name]
    assert isinstance(command, typer.core.TyperCommand)
    return command


@pytest.mark.parametrize("name", SHORT_COMMANDS)
def test_short_command_help_comes_from_the_playbook(name: str) -> None:
    playbook = catalog.load_shipped(name)
    command = named_fix(name)
    assert command.help == escape(command_help(playbook))
    options = {option: param for param in command.params for option in param.opts}
    for parameter, spec in playbook.parameters.items():
        flag = option_flag(parameter, spec).split("/")[0]
        assert getattr(options[flag], "help", None) == option_help(parameter, spec)
    for shared in ("--dry-run", "--yes", "--disk", "--image", "--address", "--ssh-timeout"):
        assert shared in options


def fleet_fix(name: str) -> typer.core.TyperCommand:
    """The click command of a named fix's fleet version (``fleet fix-ssh-keys``...)."""
    group = typer.main.get_command(fleet.app)
    assert isinstance(group, typer.core.TyperGroup)
    command = group.commands[name]
    assert isinstance(command, typer.core.TyperCommand)
    return command


@pytest.mark.parametrize("fleet_version", [False, True], ids=["single", "fleet"])
@pytest.mark.parametrize("name", SHORT_COMMANDS)
def test_short_command_options_are_the_playbook_parameters(name: str, fleet_version: bool) -> None:
    """A parameter added to (or dropped from) the playbook fails here until the command
    follows; the command's own options are the parameters and the shared groups, no more.
    The fleet version takes the same options (one declaration) and the fleet's groups."""
    playbook = catalog.load_shipped(name)
    command = fleet_fix(name) if fleet_version else named_fix(name)
    groups: tuple[type, ...] = (RepairOptions, RescueOptions, OutputOptions)
    if fleet_version:
        groups += (SelectionOptions, RateOptions)
    shared = {item.name for group in groups for item in dataclasses.fields(group)}
    shared |= {"report"} if fleet_version else set()
    own = {
        tuple(param.opts + param.secondary_opts)
        for param in command.params
        if isinstance(param, typer.core.TyperOption) and param.name not in shared
    }
    declared = {tuple(option_flag(p, spec).split("/")) for p, spec in playbook.parameters.items()}
    assert own == declared


@pytest.mark.parametrize("name", SHORT_COMMANDS)
def test_short_command_help_output(name: str) -> None:
    playbook = catalog.load_shipped(name)
    shown = subprocess.run(
        [CLOUDRESCUE, name, "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "400"},
        check=True,
    ).stdout
    assert playbook.description in shown
    words = " ".join(shown.split())  # the help wraps long lines
    for parameter, spec in playbook.parameters.items():
        assert " ".join(option_help(parameter, spec).split()) in words
        assert option_flag(parameter, spec).split("/")[0] in shown
    root_help = subprocess.run(
        [CLOUDRESCUE, "--help"], capture_output=True, text=True,
        env={**os.environ, "COLUMNS": "400"}, check=True,
    ).stdout
    assert playbook.description in root_help
