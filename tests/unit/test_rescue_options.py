"""A rescue option is a pair (issue 7): a ``RescueOptions`` field (``cli/options.py``) and the
``RescueSettings`` field of the same name (``rescue.py``) the core reads. These tests name the
half that is missing, show that a missing half is one error (never a ``TypeError``
traceback), and that every rescuing command shows every rescue flag in its ``--help``."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, get_type_hints

import pytest
import typer.core
import typer.main
from typer.models import OptionInfo

from cloudrescue.cli import register_commands
from cloudrescue.cli.options import CLI_ONLY_RESCUE_OPTIONS, RescueOptions
from cloudrescue.errors import CloudRescueError, ExitStatus
from cloudrescue.rescue import RescueSettings, rescue_settings

# RescueSettings fields that no flag sets: the core's own.
CORE_ONLY = frozenset({"poll_interval"})

# Every command that rescues an instance; each takes RescueOptions whole.
RESCUING = {
    "diagnose",
    "fix-ssh-keys",
    "fleet fix-ssh-keys",
    "fleet reset-password",
    "fleet resume",
    "fleet run",
    "rescue",
    "reset-password",
    "run",
    "shell",
}


def names(group: type) -> set[str]:
    return {item.name for item in dataclasses.fields(group)}


def pair_problems(options: type, settings: type) -> list[str]:
    """What is missing from either half of the pair, each said with where to add it."""
    given = names(options) - CLI_ONLY_RESCUE_OPTIONS
    core = names(settings) - CORE_ONLY
    return [
        *(
            f"RescueOptions.{name} has no RescueSettings field: add `{name}` to RescueSettings "
            "(cloudrescue/rescue.py), the core's half"
            for name in sorted(given - core)
        ),
        *(
            f"RescueSettings.{name} has no RescueOptions field: add `{name}` to RescueOptions "
            "(cloudrescue/cli/options.py), or to CORE_ONLY here if no flag sets it"
            for name in sorted(core - given)
        ),
    ]


def test_every_rescue_option_has_its_settings_field() -> None:
    problems = pair_problems(RescueOptions, RescueSettings)
    assert not problems, "\n".join(problems)


def test_a_missing_half_is_named() -> None:
    """The check above can fail, and says which half to add where."""
    extra = dataclasses.make_dataclass(
        "WithColour", [("colour", str, dataclasses.field(default="red"))],
        bases=(RescueOptions,), frozen=True,
    )  # fmt: skip
    assert pair_problems(extra, RescueSettings) == [
        "RescueOptions.colour has no RescueSettings field: add `colour` to RescueSettings "
        "(cloudrescue/rescue.py), the core's half"
    ]
    core = dataclasses.make_dataclass(
        "WithTint", [("tint", str, dataclasses.field(default="blue"))],
        bases=(RescueSettings,), frozen=True,
    )  # fmt: skip
    assert pair_problems(RescueOptions, core) == [
        "RescueSettings.tint has no RescueOptions field: add `tint` to RescueOptions "
        "(cloudrescue/cli/options.py), or to CORE_ONLY here if no flag sets it"
    ]


def test_the_cli_only_options_are_the_bastion_inputs_of_rescue_settings() -> None:
    """``rescue_settings`` takes the CLI-only fields as its own keyword parameters."""
    own = {
        name
        for name, parameter in inspect.signature(rescue_settings).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    }
    assert own - names(RescueSettings) == CLI_ONLY_RESCUE_OPTIONS
    assert names(RescueOptions) >= CLI_ONLY_RESCUE_OPTIONS


def test_an_option_without_its_settings_field_is_an_error_not_a_traceback() -> None:
    extra = dataclasses.make_dataclass(
        "WithColour", [("colour", str, dataclasses.field(default="red"))],
        bases=(RescueOptions,), frozen=True,
    )  # fmt: skip
    with pytest.raises(CloudRescueError, match="rescue option colour has no RescueSettings") as e:
        extra().settings()
    assert e.value.exit_status is ExitStatus.ERROR  # "a bug: please report it"
    assert RescueOptions(image="debian").settings() == RescueSettings(image="debian")


def leaf_commands(group: typer.core.TyperGroup, prefix: str = "") -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name, command in sorted(group.commands.items()):
        if isinstance(command, typer.core.TyperGroup):
            found |= leaf_commands(command, f"{prefix}{name} ")
        else:
            found[f"{prefix}{name}"] = command
    return found


def takes_rescue_options(command: Any) -> bool:
    """Whether the command's own function takes a ``RescueOptions`` parameter."""
    function = inspect.unwrap(command.callback)
    return RescueOptions in get_type_hints(function, include_extras=True).values()


def flags(group: type) -> list[str]:
    """The long flag of each field of a group, as typed (``state_timeout`` is ``--timeout``;
    Typer keeps an ``Annotated`` option's first declaration as its ``default``)."""
    hints = get_type_hints(group, include_extras=True)
    found: list[str] = []
    for item in dataclasses.fields(group):
        (option,) = (m for m in hints[item.name].__metadata__ if isinstance(m, OptionInfo))
        declared = [option.default, *option.param_decls]
        found.append(next(flag for flag in declared if str(flag).startswith("--")))
    return found


ROOT = typer.main.get_command(register_commands())
assert isinstance(ROOT, typer.core.TyperGroup)
COMMANDS = leaf_commands(ROOT)


def test_the_rescuing_commands_are_those_that_take_rescue_options() -> None:
    """A new command that takes RescueOptions joins RESCUING here; one in RESCUING that no
    longer takes the group whole (its own copy of a few flags) fails."""
    assert {path for path, command in COMMANDS.items() if takes_rescue_options(command)} == RESCUING


@pytest.mark.parametrize("path", sorted(RESCUING))
def test_every_rescuing_command_shows_every_rescue_flag(path: str) -> None:
    command = COMMANDS[path]
    ctx = typer.Context(command, info_name=f"cloudrescue {path}")
    shown = command.get_help(ctx)
    missing = [flag for flag in flags(RescueOptions) if flag not in shown.split()]
    assert not missing, f"cloudrescue {path} --help lacks {missing}"
