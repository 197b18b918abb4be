"""`console log` and `console url`: reach an instance without SSH."""

from __future__ import annotations

from typing import Annotated

import typer

from cloudrescue.cli import options
from cloudrescue.cli.render import printable

CONSOLE_TYPES = ("novnc", "xvpvnc", "spice-html5", "serial", "rdp-html5", "webmks")
app = typer.Typer(help="The instance's console: its log and its remote (noVNC) console URL.")


@app.command("log")
def log(
    ctx: typer.Context,
    instance: options.Instance,
    lines: Annotated[
        int | None,
        typer.Option("--lines", "-n", metavar="N", min=1, help="Only the last N lines."),
    ] = None,
) -> None:
    """Print the instance's console log (boot messages, emergency mode, host keys)."""
    backend = options.state(ctx).cloud()
    server = backend.find_server(instance)
    text = backend.console_output(server.id, lines).replace("\r\n", "\n")
    stream = options.environment(ctx).stdout
    stream.write(printable(text))  # the guest writes this log: no escape codes pass
    stream.flush()


@app.command("url")
def url(
    ctx: typer.Context,
    instance: options.Instance,
    console_type: Annotated[
        str,
        typer.Option("--type", metavar="TYPE", help=f"Console type: {', '.join(CONSOLE_TYPES)}."),
    ] = "novnc",
    full_page: Annotated[
        bool,
        typer.Option(
            "--vnc-html",
            help="Use noVNC's vnc.html instead of vnc_auto.html (when the display misbehaves).",
        ),
    ] = False,
) -> None:
    """Print a URL of the instance's remote console (works when SSH does not)."""
    if console_type not in CONSOLE_TYPES:
        from cloudrescue.errors import InvalidInputError

        raise InvalidInputError(
            f"--type {console_type!r}: not a console type (one of: {', '.join(CONSOLE_TYPES)})"
        )
    backend = options.state(ctx).cloud()
    server = backend.find_server(instance)
    address = backend.console_url(server.id, console_type)
    if full_page:
        address = address.replace("/vnc_auto.html", "/vnc.html")
    options.environment(ctx).out.print(address, soft_wrap=True, markup=False)
