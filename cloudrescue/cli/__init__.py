"""Command-line entry point: builds the Typer app and maps errors to exit codes.

This is the only place where exceptions become messages and exit statuses. Command modules
parse, confirm and render; they import the core lazily so ``cloudrescue --help`` stays fast.
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import sys
from typing import Annotated

import typer

from cloudrescue.cli.options import CliState
from cloudrescue.errors import CloudRescueError, ExitStatus

app = typer.Typer(
    name="cloudrescue",
    help="Repair unreachable cloud instances through rescue mode.",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        from cloudrescue import __version__

        typer.echo(f"cloudrescue {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    os_cloud: Annotated[
        str | None,
        typer.Option(
            "--os-cloud",
            envvar="OS_CLOUD",
            help="Cloud from clouds.yaml (default: $OS_CLOUD, else the OS_* variables).",
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", is_eager=True, callback=_print_version
        ),
    ] = False,
) -> None:
    """Repair unreachable cloud instances through rescue mode."""
    ctx.obj = CliState(os_cloud=os_cloud)


def _register_commands() -> None:
    from cloudrescue.cli import console, instances, lab, playbooks, run

    for command in (instances.rescue, instances.unrescue, instances.status, instances.resume):
        app.command()(command)
    run.register(app)
    app.add_typer(playbooks.app, name="playbooks")
    app.add_typer(console.app, name="console")
    app.add_typer(lab.app, name="lab")


def _error_line(message: str) -> None:
    from cloudrescue.cli.render import printable

    typer.echo(f"cloudrescue: error: {printable(message)}", err=True)


def _stop_on_signal(signum: int, frame: object) -> None:
    """SIGTERM and SIGHUP clean up like Ctrl-C (unmount, unrescue) instead of dying.

    After SIGHUP the terminal is gone: output goes to /dev/null so that cleanup does not
    fail writing to it.
    """
    if signum == signal.SIGHUP:
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.close(devnull)
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    """Run the CLI and exit with the status documented in the README."""
    # Typer may vendor its own click: take the usage errors from the module it uses.
    click_errors = importlib.import_module(typer.BadParameter.__module__)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _stop_on_signal)
    # Libraries' log records (keystoneauth's discovery warnings) are not for the user's
    # terminal: errors reach it as one line, from here.
    logging.getLogger().addHandler(logging.NullHandler())
    _register_commands()
    try:
        # Not standalone, Typer returns the code of a `typer.Exit` (130 for Ctrl-C).
        code = app(args=argv, standalone_mode=False)
    except CloudRescueError as error:
        _error_line(error.message)
        if error.hint:
            from cloudrescue.cli.render import printable

            typer.echo(f"hint: {printable(error.hint)}", err=True)
        sys.exit(error.exit_status)
    except (KeyboardInterrupt, typer.Abort):
        _error_line("interrupted")
        sys.exit(ExitStatus.INTERRUPTED)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except click_errors.ClickException as error:
        _error_line(error.format_message())
        context = getattr(error, "ctx", None)
        if context is not None:
            typer.echo(f"hint: see `{context.command_path} --help`", err=True)
        sys.exit(ExitStatus.USAGE)
    if code == ExitStatus.INTERRUPTED:
        _error_line("interrupted")
    sys.exit(code if isinstance(code, int) else ExitStatus.SUCCESS)
