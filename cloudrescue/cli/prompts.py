"""Questions the CLI asks the user: confirming a reboot into rescue, choosing among several
root filesystems, and reading a secret (hidden, twice) or taking it from stdin."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import typer

from cloudrescue.cli.render import RichEvents, safe, stderr

if TYPE_CHECKING:
    from cloudrescue.disks import AskRoot, RootFilesystem
    from cloudrescue.playbook.paramtypes import Secret

def confirm(action: str, *, yes: bool, dry_run: bool) -> None:
    """Ask before rebooting an instance into rescue (``--yes`` skips; no TTY needs --yes)."""
    from cloudrescue.errors import InvalidInputError

    if yes:
        return
    if not sys.stdin.isatty():
        raise InvalidInputError(
            "refusing to reboot an instance into rescue without confirmation: "
            "stdin is not a terminal, pass --yes"
        )
    verb = "inspect (dry run, read-only)" if dry_run else "repair"
    if not typer.confirm(
        f"This reboots {action} into rescue mode to {verb} it, then reboots it normally "
        "(downtime of a few minutes). Continue?"
    ):
        raise typer.Abort()


def root_chooser(events: RichEvents, *, yes: bool) -> AskRoot | None:
    """On a terminal (and without ``--yes``), ask which root to repair when several are found."""
    if yes or not sys.stdin.isatty():
        return None

    def ask(roots: Sequence[RootFilesystem]) -> RootFilesystem:
        with events.paused():
            stderr.print("Several root filesystems were found:")
            for number, root in enumerate(roots, 1):
                stderr.print(f"  {number}) {safe(root.describe())}", highlight=False)
            while True:
                choice: int = typer.prompt("Which one is the instance's root? (number)", type=int)
                if 1 <= choice <= len(roots):
                    return roots[choice - 1]
                stderr.print(f"  choose a number from 1 to {len(roots)}")

    return ask


def read_secret(name: str, description: str, *, from_stdin: bool, flag: str) -> Secret:
    """The secret ``name`` from one line of stdin, or asked twice (hidden) on the terminal.

    ``flag`` is the option that takes it from stdin, named when there is no terminal.
    """
    from cloudrescue.errors import InvalidInputError
    from cloudrescue.playbook.paramtypes import Secret

    if from_stdin:
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise InvalidInputError(f"no {name} on stdin (one line expected)")
        return Secret(line)
    if not sys.stdin.isatty():
        raise InvalidInputError(
            f"{name} is a secret and stdin is not a terminal to ask for it: pass {flag}"
        )
    answer = typer.prompt(description.rstrip("."), hide_input=True, confirmation_prompt=True)
    return Secret(str(answer))
