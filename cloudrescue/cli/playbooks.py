"""`playbooks list|show|validate`: the catalog of shipped playbooks, and checking a file."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from cloudrescue.cli.render import stdout
from cloudrescue.playbook import SHORT_COMMANDS

app = typer.Typer(
    help="Playbooks: declarative repairs (list, show, validate; run them with `run`).",
    no_args_is_help=True,
)


@app.command("list")
def list_playbooks() -> None:
    """List the shipped playbooks."""
    from rich.table import Table

    from cloudrescue.playbook import catalog

    table = Table(box=None, show_header=True, header_style="bold")
    for heading in ("playbook", "mount", "description"):
        table.add_column(heading)
    for name in catalog.shipped_names():
        playbook = catalog.load_shipped(name)
        marked = f"{name} *" if name in SHORT_COMMANDS else name
        table.add_row(marked, playbook.mount, playbook.description)
    stdout.print(table)
    stdout.print("* also a command: `cloudrescue NAME INSTANCE`; every one: `cloudrescue run`")


@app.command("show")
def show(
    playbook: Annotated[str, typer.Argument(help="Playbook name or .yaml file.")],
) -> None:
    """Show a playbook: parameters, steps and what it changes."""
    from cloudrescue.playbook import catalog, docs

    stdout.out(docs.playbook_section(catalog.find(playbook), level=1), highlight=False)


@app.command("validate")
def validate(
    playbook: Annotated[str, typer.Argument(help="Playbook file (or shipped name).")],
) -> None:
    """Check a playbook file; print `valid` or the error (file:line: field: message)."""
    from cloudrescue.playbook import catalog

    loaded = catalog.find(playbook)
    count = len(loaded.steps)
    stdout.print(f"{escape(loaded.source)}: valid ({count} step{'' if count == 1 else 's'})")
