"""Playbook commands: `playbooks list|show|validate`, `run`, and the short commands.

The short commands (`fix-ssh-keys`, `reset-password`, see ``SHORT_COMMANDS``) are built from
their playbook's declaration the first time they are used: their help and options come from
the playbook's description and parameters, their rescue options are those of `run`. Nothing
here imports pydantic or YAML until a playbook command actually runs.
"""

from __future__ import annotations

import inspect
import sys
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from typer.core import TyperCommand

from cloudrescue.cli import options
from cloudrescue.cli.fixes import Disk, confirm, root_chooser
from cloudrescue.cli.render import RichEvents, stdout
from cloudrescue.playbook import SHORT_COMMANDS

if TYPE_CHECKING:
    from typer._click import Command, Context

    from cloudrescue.playbook.engine import StepReport
    from cloudrescue.playbook.paramtypes import Secret
    from cloudrescue.playbook.runner import PlaybookReport
    from cloudrescue.playbook.schema import ParameterSpec, Playbook

app = typer.Typer(
    help="Playbooks: declarative repairs (list, show, validate; run them with `run`).",
    no_args_is_help=True,
)

STATUS_STYLE = {"changed": "yellow", "ok": "green", "skipped": "dim", "failed": "red"}
RUN_OPTIONS = (
    "dry_run",
    "yes",
    "disk",
    "image",
    "address",
    "jump",
    "jump_key",
    "jump_fingerprint",
    "trust_host_key",
    "timeout",
    "ssh_timeout",
)
PARAM_PREFIX = "param_"


@dataclass(frozen=True)
class RunOptions:
    """The options `run` and every short command share (as in `fix-ssh-keys` before)."""

    dry_run: bool
    yes: bool
    disk: str | None
    image: str | None
    address: str | None
    jump: str | None
    jump_key: Path | None
    jump_fingerprint: str | None
    trust_host_key: bool
    timeout: float
    ssh_timeout: float


# -- playbooks list / show / validate ---------------------------------------------------------


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


# -- running ----------------------------------------------------------------------------------


def _read_secret(name: str, spec: ParameterSpec, from_stdin: bool, hint: str) -> Secret:
    from cloudrescue.errors import InvalidInputError
    from cloudrescue.playbook.paramtypes import Secret

    if from_stdin:
        line = sys.stdin.readline()
        if not line.rstrip("\r\n"):
            raise InvalidInputError(f"no {name} on stdin (one line expected)")
        return Secret(line.rstrip("\r\n"))
    if not sys.stdin.isatty():
        raise InvalidInputError(
            f"{name} is a secret and stdin is not a terminal to ask for it: pass {hint}"
        )
    value = typer.prompt(
        spec.description.rstrip("."), hide_input=True, confirmation_prompt=True
    )
    return Secret(str(value))


def _execute(
    ctx: typer.Context,
    instance: str,
    playbook: Playbook,
    given: Mapping[str, list[str]],
    secret_source: Callable[[str, ParameterSpec], Secret],
    run: RunOptions,
) -> None:
    """Check every value, then rescue the instance, run the playbook and print the report."""
    from cloudrescue.journal import Journal
    from cloudrescue.playbook.engine import check_values
    from cloudrescue.playbook.params import resolve
    from cloudrescue.playbook.runner import run_playbook
    from cloudrescue.repair import DiskOptions
    from cloudrescue.rescue import RescueWorkflow

    values = resolve(playbook, given, secret_source)
    check_values(playbook, values)
    settings = options.rescue_settings(
        image=run.image,
        address=run.address,
        jump=run.jump,
        jump_key=run.jump_key,
        jump_fingerprint=run.jump_fingerprint,
        trust_host_key=run.trust_host_key,
        timeout=run.timeout,
        ssh_timeout=run.ssh_timeout,
    )
    backend = options.state(ctx).cloud()
    server = backend.find_server(instance)
    confirm(f"{server.name} ({server.id})", yes=run.yes, dry_run=run.dry_run)
    with RichEvents() as events:
        workflow = RescueWorkflow(backend, Journal(), events, settings)

        def on_step(report: StepReport) -> None:
            events.note(f"{_label(report, run.dry_run)}: {report.step.name}")

        report = run_playbook(
            workflow,
            server,
            playbook,
            values,
            dry_run=run.dry_run,
            disk=DiskOptions(disk=run.disk, ask=root_chooser(events, yes=run.yes)),
            on_step=on_step,
        )
    render(report)


def _label(step: StepReport, dry_run: bool) -> str:
    return "would change" if dry_run and step.status == "changed" else step.status


def _render_step(step: StepReport, dry_run: bool) -> None:
    style = STATUS_STYLE[step.status]
    note = f" [dim]({escape(step.note)})[/]" if step.note else ""
    stdout.print(f"[{style}]{_label(step, dry_run):<8}[/] {escape(step.step.name)}{note}")
    for change in step.outcome.changes:
        stdout.print(f"         {'would: ' if dry_run else ''}{escape(change.detail)}")
        if dry_run and change.diff:
            stdout.out(change.diff, end="", highlight=False)
    if step.outcome.report:
        stdout.out(textwrap.indent(step.outcome.report, " " * 9), highlight=False)
    for command in step.outcome.commands:
        argv = escape(" ".join(command.argv))
        if command.ran:
            stdout.print(f"         ran ({command.where}): {argv} → exit {command.exit_code}")
            if command.output:
                stdout.out(textwrap.indent(command.output, " " * 9), highlight=False)
        else:
            stdout.print(f"         would run ({command.where}): {argv}")


def render(report: PlaybookReport) -> None:
    """Print each step's status, diffs in check mode, skipped mounts and the final state."""
    name = report.server.name
    if report.guest is not None:
        for skipped in report.guest.skipped:
            stdout.print(
                f"[yellow]skipped mount[/] {skipped.mountpoint} ({skipped.spec}): {skipped.reason}"
            )
    for step in report.result.steps:
        _render_step(step, report.dry_run)
    counts = {
        status: sum(1 for step in report.result.steps if step.status == status)
        for status in ("changed", "ok", "skipped")
    }
    verb = "would change" if report.dry_run else "changed"
    stdout.print(
        f"[bold]{report.playbook.name}[/] on [bold]{name}[/]: {counts['changed']} {verb}, "
        f"{counts['ok']} ok, {counts['skipped']} skipped."
    )
    if report.dry_run:
        stdout.print("Dry run: nothing was changed on the disk.")
    elif not report.changed:
        stdout.print(f"[bold]{name}[/]: ok, nothing needed changing.")
    if report.unmount is not None and not report.unmount.ok:
        stdout.print(f"[red]unmount problems:[/] {'; '.join(report.unmount.failed)}")
    stdout.print(f"[bold]{name}[/] is {report.server.status} again.")
    if report.result.message and not report.dry_run:
        stdout.print(escape(report.result.message))


def run(
    ctx: typer.Context,
    instance: options.Instance,
    playbook: Annotated[
        str,
        typer.Argument(
            help="Playbook name (`cloudrescue playbooks list`) or a .yaml file.",
            show_default=False,
        ),
    ],
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            "-p",
            help="NAME=VALUE for a playbook parameter (repeatable; list parameters take "
            "several). Secrets are never given here.",
        ),
    ] = None,
    secret_stdin: Annotated[
        bool,
        typer.Option(
            "--secret-stdin",
            help="Read secret parameters from stdin, one line each in declaration order, "
            "instead of asking on the terminal.",
        ),
    ] = False,
    dry_run: options.DryRun = False,
    yes: options.Yes = False,
    disk: Disk = None,
    image: options.Image = None,
    address: options.Address = None,
    jump: options.Jump = None,
    jump_key: options.JumpKey = None,
    jump_fingerprint: options.JumpFingerprint = None,
    trust_host_key: options.TrustHostKey = False,
    timeout: options.Timeout = 600,
    ssh_timeout: options.SshTimeout = 300,
) -> None:
    """Run a playbook on an instance: rescue, mount, run the steps, unmount, unrescue.

    With --dry-run the disk is mounted read-only and the diffs and commands are shown.
    """
    from cloudrescue.playbook import catalog
    from cloudrescue.playbook.params import parse_assignments

    loaded = catalog.find(playbook)
    given = parse_assignments(param or [])
    run_options = RunOptions(
        dry_run=dry_run,
        yes=yes,
        disk=disk,
        image=image,
        address=address,
        jump=jump,
        jump_key=jump_key,
        jump_fingerprint=jump_fingerprint,
        trust_host_key=trust_host_key,
        timeout=timeout,
        ssh_timeout=ssh_timeout,
    )

    def secret(name: str, spec: ParameterSpec) -> Secret:
        return _read_secret(name, spec, secret_stdin, "--secret-stdin")

    _execute(ctx, instance, loaded, given, secret, run_options)


# -- short commands ---------------------------------------------------------------------------


def _dashed(name: str) -> str:
    return name.replace("_", "-")


def option_flag(name: str, spec: ParameterSpec) -> str:
    """The short command's option for a parameter (``--key``, ``--replace/--append``...)."""
    if spec.flag:
        return spec.flag
    if spec.type == "secret":
        return f"--{_dashed(name)}-stdin"
    if spec.type == "bool":
        return f"--{_dashed(name)}/--no-{_dashed(name)}"
    return f"--{_dashed(name)}"


def option_help(name: str, spec: ParameterSpec) -> str:
    """The short command's help for a parameter: its description and default."""
    from cloudrescue.playbook.docs import parameter_default

    if spec.type == "secret":
        return (
            f"Read the {spec.description.rstrip('.').lower()} from stdin (one line) instead "
            "of asking twice on the terminal."
        )
    if spec.type == "bool":
        on, _, off = option_flag(name, spec).partition("/")
        return f"{spec.description} Default: {on if spec.default else off}."
    choices = f" One of: {', '.join(spec.choices)}." if spec.choices else ""
    return f"{spec.description}{choices} Default: {parameter_default(spec)}."


def _parameter(name: str, spec: ParameterSpec) -> inspect.Parameter:
    flag = option_flag(name, spec)
    text = option_help(name, spec)
    annotation: Any
    default: Any = None
    if spec.type == "secret":
        annotation, default = Annotated[bool, typer.Option(flag, help=text)], False
    elif spec.type == "bool":
        annotation = Annotated[bool | None, typer.Option(flag, help=text, show_default=False)]
    elif spec.type == "public_keys":
        annotation = Annotated[list[Path] | None, typer.Option(flag, help=text)]
    elif spec.type == "int":
        annotation = Annotated[int | None, typer.Option(flag, help=text, show_default=False)]
    else:
        annotation = Annotated[str | None, typer.Option(flag, help=text, show_default=False)]
    return inspect.Parameter(
        PARAM_PREFIX + name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation
    )


def _given(playbook: Playbook, values: Mapping[str, Any]) -> dict[str, list[str]]:
    given: dict[str, list[str]] = {}
    for name, spec in playbook.parameters.items():
        value = values[PARAM_PREFIX + name]
        if spec.type == "secret" or value is None or value == []:
            continue
        if isinstance(value, list):
            given[name] = [str(item) for item in value]
        elif isinstance(value, bool):
            given[name] = ["true" if value else "false"]
        else:
            given[name] = [str(value)]
    return given


def command_help(playbook: Playbook) -> str:
    """A short command's help text, from the playbook's declaration."""
    parts = [playbook.description]
    if playbook.details:
        parts.append(playbook.details)
    parts.append(
        f"Runs the playbook {playbook.name} (see `cloudrescue playbooks show {playbook.name}`)."
    )
    return "\n\n".join(parts)


def _shortcut_function(playbook: Playbook) -> Callable[..., None]:
    run_signature = inspect.signature(run, eval_str=True).parameters

    def command(ctx: typer.Context, instance: str, **values: Any) -> None:
        stdin_secrets = {
            name
            for name, spec in playbook.parameters.items()
            if spec.type == "secret" and values[PARAM_PREFIX + name]
        }

        def secret(name: str, spec: ParameterSpec) -> Secret:
            return _read_secret(name, spec, name in stdin_secrets, option_flag(name, spec))

        run_options = RunOptions(**{name: values[name] for name in RUN_OPTIONS})
        _execute(ctx, instance, playbook, _given(playbook, values), secret, run_options)

    shared = [run_signature[name] for name in ("ctx", "instance", *RUN_OPTIONS)]
    keyword = inspect.Parameter.KEYWORD_ONLY
    command.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            *(parameter.replace(kind=keyword) for parameter in shared[:2]),
            *(_parameter(name, spec) for name, spec in playbook.parameters.items()),
            *(parameter.replace(kind=keyword) for parameter in shared[2:]),
        ]
    )
    command.__annotations__ = {}
    return command


@cache
def shortcut_command(name: str) -> Command:
    """The full click command for a shipped playbook's short command."""
    from cloudrescue.playbook import catalog

    playbook = catalog.load_shipped(name)
    single = typer.Typer(add_completion=False)
    function = _shortcut_function(playbook)
    single.command(name, help=escape(command_help(playbook)))(function)
    return typer.main.get_command(single)


class PlaybookCommand(TyperCommand):
    """A short command registered by name only; its playbook is read when it is used."""

    _short_text: str | None = None

    @property
    def short_help(self) -> str | None:
        from cloudrescue.playbook import catalog

        return self._short_text or catalog.shipped_description(self.name or "")

    @short_help.setter
    def short_help(self, value: str | None) -> None:
        self._short_text = value

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: Context | None = None,
        **extra: Any,
    ) -> Context:
        return shortcut_command(self.name or "").make_context(
            info_name, args, parent=parent, **extra
        )


def _built_on_use() -> None:
    """Never called: ``PlaybookCommand.make_context`` hands over to the built command."""


def register(root: typer.Typer) -> None:
    """Add `playbooks`, `run` and the short commands to the root app."""
    root.add_typer(app, name="playbooks")
    root.command("run")(run)
    for name in SHORT_COMMANDS:
        root.command(name, cls=PlaybookCommand, add_help_option=False)(_built_on_use)
