"""Actions that run commands: run_chroot (the guest's own programs) and run_rescue.

Commands are argument lists, never shell strings. In check mode they are only shown, unless
the step says ``read_only: true`` (a diagnostic that changes nothing).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from cloudrescue.fixes.sandbox import run_in_guest
from cloudrescue.playbook.actions.base import (
    Action,
    ActionParams,
    CommandRecord,
    Outcome,
    StepFailedError,
)
from cloudrescue.playbook.fields import ARGUMENT, COMMAND, COUNT, EXIT_CODES, FLAG, STDIN
from cloudrescue.playbook.target import Target
from cloudrescue.remote.base import CommandResult

DEFAULT_TIMEOUT = 600


class RunParams(ActionParams):
    argv: Annotated[list[Annotated[str, ARGUMENT]], COMMAND] = Field(
        description="the command and its arguments, as a list"
    )
    stdin: Annotated[str | None, STDIN] = Field(
        None, description="text fed to the command (the one place secrets may go)"
    )
    read_only: Annotated[bool, FLAG] = Field(
        False, description="the command changes nothing: it also runs in check mode, reports ok"
    )
    ok_exit_codes: Annotated[list[int], EXIT_CODES] = Field(
        [0], description="exit statuses that mean success"
    )
    timeout: Annotated[int, COUNT] = Field(DEFAULT_TIMEOUT, description="seconds before it fails")


def _output(result: CommandResult) -> str:
    return "\n".join(part.strip() for part in (result.stdout, result.stderr) if part.strip())


def _run(target: Target, params: RunParams, where: Literal["rescue", "chroot"]) -> Outcome:
    shown = tuple(params.argv)
    phase = target.phase
    if phase.dry_run and not params.read_only:
        return Outcome(changed=True, commands=(CommandRecord(where, shown, ran=False),))
    stdin = params.stdin.encode() if params.stdin is not None else None
    if where == "chroot":
        files = phase.need_guest().files
        result = run_in_guest(files, params.argv, stdin=stdin, timeout=params.timeout)
    else:
        result = phase.host.run(params.argv, stdin=stdin, check=False, timeout=params.timeout)
    record = CommandRecord(
        where, shown, ran=True, exit_code=result.exit_code, output=_output(result)
    )
    if result.exit_code not in params.ok_exit_codes:
        lines = record.output.splitlines()
        raise StepFailedError(
            f"`{' '.join(shown)}` exited with status {result.exit_code}: "
            f"{lines[-1] if lines else 'no output'}"
        )
    return Outcome(changed=not params.read_only, commands=(record,))


def _run_chroot(target: Target, params: RunParams, step: str) -> Outcome:
    return _run(target, params, "chroot")


def _run_rescue(target: Target, params: RunParams, step: str) -> Outcome:
    return _run(target, params, "rescue")


ACTIONS = (
    Action(
        "run_chroot",
        "Run one of the guest's own programs, chrooted into the mounted guest.",
        RunParams,
        "whatever the command changes (not undone on failure)",
        "chroot",
        _run_chroot,
    ),
    Action(
        "run_rescue",
        "Run a command on the rescue system (e.g. fsck on `{{ facts.root_device }}`).",
        RunParams,
        "whatever the command changes (not undone on failure)",
        "rescue",
        _run_rescue,
    ),
)
