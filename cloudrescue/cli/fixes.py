"""What repair commands share: the `--disk` option and the confirmation before a rescue.

The repair commands themselves are playbooks (`cloudrescue/cli/playbooks.py`).
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

Disk = Annotated[
    str | None,
    typer.Option("--disk", help="Which filesystem is the instance's root (device, UUID, LABEL)."),
]


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
