"""`playbooks list|show|validate`: the catalog of shipped playbooks, and checking a file."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from cloudrescue.cli.completion import playbook_names
from cloudrescue.cli.options import environment, takes_options
from cloudrescue.cli.output import OutputOptions, show_list, show_record
from cloudrescue.cli.records import PLAYBOOK, PLAYBOOKS
from cloudrescue.playbook import SHORT_COMMANDS

if TYPE_CHECKING:
    from cloudrescue.playbook.schema import Playbook

app = typer.Typer(
    help="Playbooks: declarative repairs (list, show, validate; run them with `run`).",
    no_args_is_help=True,
)
PlaybookArgument = Annotated[
    str,
    typer.Argument(
        help="Playbook name or .yaml file.", show_default=False, autocompletion=playbook_names
    ),
]


@app.command("list")
@takes_options
def list_playbooks(ctx: typer.Context, output: OutputOptions) -> None:
    """List the shipped playbooks."""
    from cloudrescue.playbook import catalog

    env = environment(ctx)
    output.selected(PLAYBOOKS.names)
    rows: list[dict[str, Any]] = []
    for name in catalog.shipped_names():
        playbook = catalog.load_shipped(name)
        rows.append(
            {
                "name": name,
                "command": name in SHORT_COMMANDS,
                "mount": playbook.mount,
                "description": playbook.description,
            }
        )
    if not output.for_people:
        show_list(env, output, PLAYBOOKS.names, rows)
        return
    people = [
        {**row, "name": f"{row['name']} *" if row["command"] else row["name"]} for row in rows
    ]
    show_list(env, output, ("name", "mount", "description"), people)
    env.out.print("* also a command: `cloudrescue NAME INSTANCE`; every one: `cloudrescue run`")


def _playbook_record(playbook: Playbook) -> dict[str, Any]:
    return {
        "name": playbook.name,
        "description": playbook.description,
        "details": playbook.details,
        "mount": playbook.mount,
        "chroot": playbook.chroot,
        "parameters": [
            {"name": name, **spec.model_dump()} for name, spec in playbook.parameters.items()
        ],
        "steps": [
            {
                "name": step.name,
                "action": step.action.name,
                "when": step.when,
                "params": step.params,
            }
            for step in playbook.steps
        ],
        "message": playbook.message,
        "source": playbook.source,
        "symptoms": playbook.symptoms.model_dump(mode="json"),
    }


@app.command("show")
@takes_options
def show(ctx: typer.Context, playbook: PlaybookArgument, output: OutputOptions) -> None:
    """Show a playbook: parameters, steps and what it changes."""
    from cloudrescue.playbook import catalog, docs

    env = environment(ctx)
    output.selected(PLAYBOOK.names)
    found = catalog.find(playbook)
    record = _playbook_record(found)

    def document() -> None:
        env.out.out(docs.playbook_section(found, level=1), highlight=False)

    show_record(env, output, record, for_people=document)


@app.command("validate")
def validate(ctx: typer.Context, playbook: PlaybookArgument) -> None:
    """Check a playbook file; print `valid`, or every error (file:line: field: message)."""
    from cloudrescue.errors import InvalidInputError
    from cloudrescue.playbook import catalog
    from cloudrescue.playbook.source import PlaybookError

    try:
        loaded = catalog.find(playbook)
    except PlaybookError as error:
        # The error line says how many (or is the only error); one line per error follows.
        details = error.lines() if len(error.errors) > 1 else []
        raise InvalidInputError(error.summary, details=details) from None
    count = len(loaded.steps)
    environment(ctx).out.print(
        f"{escape(loaded.source)}: valid ({count} step{'' if count == 1 else 's'})"
    )
