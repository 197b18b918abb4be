"""Command-line entry point: builds the Typer app and maps errors to exit codes.

This is the only place where exceptions become messages and exit statuses. Command modules
parse, confirm and render; they import the core lazily so ``cloudrescue --help`` stays fast.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import traceback
from collections.abc import Sequence
from typing import Annotated

import typer
import typer.core

from cloudrescue.cli.environment import Environment
from cloudrescue.cli.logs import configure_logging
from cloudrescue.cli.options import CliState, GlobalOptions, hoist_global_options, takes_options
from cloudrescue.cli.render import one_line
from cloudrescue.errors import CloudRescueError, ExitStatus

HELP = ["-h", "--help"]

# Typer vendors its own click: its exceptions come from the module Typer uses.
click_errors = importlib.import_module(typer.BadParameter.__module__)
PROG = "cloudrescue"
COMPLETE_VARIABLE = "_CLOUDRESCUE_COMPLETE"

app = typer.Typer(
    name="cloudrescue",
    help="Repair unreachable cloud instances through rescue mode.",
    no_args_is_help=True,
    add_completion=True,
    context_settings={"help_option_names": HELP, "max_content_width": 160},
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help, as `openstack` prints it: no type or box noise
)


def _print_version(value: bool) -> None:
    if value:
        from cloudrescue import __version__

        typer.echo(f"cloudrescue {__version__}")
        raise typer.Exit()


@app.callback()
@takes_options
def _root(
    ctx: typer.Context,
    options: GlobalOptions,
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", is_eager=True, callback=_print_version
        ),
    ] = False,
) -> None:
    """Repair unreachable cloud instances through rescue mode."""
    env = ctx.obj if isinstance(ctx.obj, Environment) else Environment()
    env.verbosity = -1 if options.quiet else options.verbose
    env.debug = options.debug
    if options.debug:
        env.verbosity = max(env.verbosity, 2)
    configure_logging(env)
    ctx.obj = CliState(options=options, env=env)


def register_commands() -> typer.Typer:
    """The app with every command (once: a second call changes nothing)."""
    from cloudrescue.cli import (
        console,
        diagnose,
        fleet,
        instances,
        lab,
        ovh,
        playbooks,
        run,
        shell,
    )

    if app.registered_commands:
        return app

    for command in (instances.rescue, instances.unrescue, instances.status, instances.resume):
        app.command()(command)
    run.register(app)
    shell.register(app)
    diagnose.register(app)
    app.add_typer(playbooks.app, name="playbooks")
    app.add_typer(console.app, name="console")
    app.add_typer(fleet.app, name="fleet")
    app.add_typer(lab.app, name="lab")
    app.add_typer(ovh.app, name="ovh")
    return app


def _error_line(
    env: Environment, message: str, hint: str | None = None, details: Sequence[str] = ()
) -> None:
    env.stderr.write(f"cloudrescue: error: {one_line(message)}\n")
    for line in details:
        env.stderr.write(f"{one_line(line)}\n")
    if hint:
        env.stderr.write(f"hint: {one_line(hint)}\n")
    env.stderr.flush()


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


def _argument_metavar(argument: typer.core.TyperArgument) -> None:
    """``INSTANCE`` / ``[INSTANCE]`` / ``PLAYBOOK...`` in the usage line, as click and
    ``openstack`` print them (Typer 0.28 writes a required argument as ``{instance}``)."""
    name = argument.metavar or (argument.name or "value").upper()
    name += "..." if argument.nargs != 1 else ""

    def make_metavar(ctx: typer.Context, *, usage: bool = False) -> str:
        return f"[{name}]" if usage and not argument.required else name

    argument.make_metavar = make_metavar  # type: ignore[method-assign,assignment]


def _metavars(command: typer.core.TyperCommand | typer.core.TyperGroup) -> None:
    """Help without type noise: flags show no value, other options their name in capitals."""
    help_option = command.get_help_option(typer.Context(command, help_option_names=HELP))
    if help_option is not None:
        help_option.metavar = ""  # made once and kept by the command
    for param in command.params:
        if isinstance(param, typer.core.TyperArgument):
            _argument_metavar(param)
            continue
        if param.metavar is not None:
            continue
        if isinstance(param, typer.core.TyperOption) and (param.is_flag or param.count):
            param.metavar = ""
        else:
            param.metavar = (param.name or "value").upper()
    if isinstance(command, typer.core.TyperGroup):
        for sub in command.commands.values():
            if isinstance(sub, typer.core.TyperCommand | typer.core.TyperGroup):
                _metavars(sub)


def _run(argv: list[str], env: Environment) -> int:
    """Parse ``argv`` and run the command (click's own error printing stays out of it)."""
    command = typer.main.get_command(app)
    assert isinstance(command, typer.core.TyperGroup)
    _metavars(command)
    if COMPLETE_VARIABLE in os.environ:  # the shell asks for completions
        command.main(args=argv, prog_name=PROG, standalone_mode=True)
    with command.make_context(PROG, hoist_global_options(argv), obj=env) as ctx:
        result = command.invoke(ctx)
    return result if isinstance(result, int) else ExitStatus.SUCCESS


def main(argv: list[str] | None = None, env: Environment | None = None) -> None:
    """Run the CLI and exit with the status documented in the README.

    ``env`` (the streams and what they are) is the process's own unless a test gives one.
    """
    env = env or Environment()
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _stop_on_signal)
    register_commands()
    try:
        code = _run(sys.argv[1:] if argv is None else argv, env)
    except BrokenPipeError:  # `cloudrescue ... | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(ExitStatus.SUCCESS)
    except CloudRescueError as error:
        if env.debug:
            traceback.print_exc(file=env.stderr)
        _error_line(env, error.message, error.hint, error.details)
        sys.exit(error.exit_status)
    except (KeyboardInterrupt, typer.Abort):
        _error_line(env, "interrupted")
        sys.exit(ExitStatus.INTERRUPTED)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except click_errors.ClickException as error:
        context = getattr(error, "ctx", None)
        hint = f"see `{context.command_path} --help`" if context is not None else None
        _error_line(env, error.format_message(), hint)
        sys.exit(ExitStatus.USAGE)
    if code == ExitStatus.INTERRUPTED:
        _error_line(env, "interrupted")
    sys.exit(code)
