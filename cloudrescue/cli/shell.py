"""`cloudrescue shell`: a root shell on an instance's own disk, through rescue mode.

The CLI's part: the options, the confirmation, this process's terminal joined to the remote
shell (``cloudrescue.shell.terminal``) with the progress display paused meanwhile, the
``unrescue NAME now?`` question, and the report. The procedure is
``cloudrescue.shell.session.open_shell``.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cloudrescue.cli.environment import Environment
from cloudrescue.cli.options import Instance, RescueOptions, Yes, environment, state, takes_options
from cloudrescue.cli.output import OutputOptions, show_record
from cloudrescue.cli.prompts import confirm, root_chooser
from cloudrescue.cli.render import RichEvents, printable, safe
from cloudrescue.shell.escape import escape_help

if TYPE_CHECKING:
    from cloudrescue.shell.chroot import Program
    from cloudrescue.shell.record import Recorder
    from cloudrescue.shell.session import LeaveRule, ShellReport, TerminalRequest
    from cloudrescue.shell.terminal import SessionEnd

HELP = f"""Open a root shell on an instance's own disk, through rescue mode.

The instance is rescued, its disk found and mounted (its /boot and /boot/efi too), and you get
the guest's own shell in a chroot of it: proc, sys (read-only), dev, devpts, /run and /tmp as
tmpfs, the rescue's resolv.conf. The chroot is sandboxed: its programs can change the guest's
files (as root) and nothing of the rescue system. --no-chroot gives the rescue system's shell
with the disk on /mnt instead. The shell runs in tmux on the rescue when it has tmux: a cut
connection is reattached, and `cloudrescue shell INSTANCE` again reattaches to a shell left
running.

When the shell ends, the files it created, changed or removed under /etc, /home, /root, /boot
and /var/spool/cron are listed (and kept in the journal); the disk is unmounted, and on a
terminal you are asked whether to unrescue the instance now (--unrescue / --keep-rescued
answer in advance; without a terminal it is unrescued). A kept instance is journalled as held:
`cloudrescue shell` logs in to it again, `cloudrescue unrescue` ends it.

--command 'CMD', or a script on stdin when stdin is not a terminal, runs in the chroot
instead of an interactive shell, its output streamed.

Exit status: the shell's own (or the command's), once everything is cleaned up; cloudrescue's
codes when cloudrescue itself fails (see the README).

\b
{escape_help()}
"""


@dataclass
class ProcessTerminal:
    """This process's terminal as ``cloudrescue.shell.session.ShellTerminal`` (the CLI's)."""

    env: Environment
    events: RichEvents
    record: Recorder | None
    ask: bool  # a terminal, and no --unrescue / --keep-rescued

    def request(self) -> TerminalRequest | None:
        from cloudrescue.shell.session import TerminalRequest
        from cloudrescue.shell.terminal import LocalTerminal

        local = LocalTerminal.of_process()
        if not local.is_tty():
            return None
        columns, lines = local.size()
        return TerminalRequest(os.environ.get("TERM") or "xterm", columns, lines)

    def attach(self, channel: Any, sync: Callable[[], str]) -> SessionEnd:
        from cloudrescue.shell.terminal import LocalTerminal, interact

        with self.events.paused():
            return interact(channel, LocalTerminal.of_process(), on_sync=sync, recorder=self.record)

    def show(self, lines: Sequence[str]) -> None:
        if self.env.quiet:
            return
        with self.events.paused():
            for line in lines:
                self.env.err.print(safe(line), highlight=False, soft_wrap=True)

    def ask_unrescue(self, name: str) -> bool:
        if not self.ask:
            return True
        from cloudrescue.cli.prompts import ask_yes

        with self.events.paused():
            return ask_yes(self.env, f"unrescue {safe(name)} now?", default=True)


def _leave_rule(unrescue: bool, keep_rescued: bool) -> LeaveRule:
    from cloudrescue.errors import InvalidInputError

    if unrescue and keep_rescued:
        raise InvalidInputError("--unrescue and --keep-rescued: choose one")
    return "unrescue" if unrescue else "keep" if keep_rescued else "ask"


def shell_record(report: ShellReport) -> dict[str, Any]:
    """The shell's result as one record (stable field names, ``SHELL`` in records.py)."""
    return {
        "instance": report.server.name,
        "instance_id": report.server.id,
        "run": report.run_id,
        "exit_status": report.exit_status,
        "root": report.mount.device if report.mount is not None else None,
        "kept_in_rescue": report.kept_in_rescue,
        "shell_running": report.shell_running,
        "changes": [change.as_record() for change in report.changes],
        "changes_complete": report.changes_complete,
    }


def _for_people(env: Environment, report: ShellReport) -> None:
    from cloudrescue.shell.session import summary

    err = env.err
    if not report.shell_running:
        err.print(safe(summary(report)), highlight=False, soft_wrap=True)
    for change in report.changes:
        err.print(
            f"  {change.kind:<8} {printable(change.path)}  [dim]{safe(change.detail)}[/]",
            highlight=False,
            soft_wrap=True,
        )
    name = safe(report.server.name)
    if report.shell_running:
        err.print(f"the shell goes on: `cloudrescue shell {name}` reattaches", highlight=False)
    elif report.kept_in_rescue:
        err.print(
            f"{name} stays in rescue: `cloudrescue shell {name}` logs in again, "
            f"`cloudrescue unrescue {name}` ends it",
            highlight=False,
        )


@takes_options
def shell(
    ctx: typer.Context,
    instance: Instance,
    rescue: RescueOptions,
    output: OutputOptions,
    yes: Yes = False,
    disk: Annotated[
        str | None,
        typer.Option("--disk", metavar="DEVICE|UUID=|LABEL=", help="Which filesystem is the root."),
    ] = None,
    read_only: Annotated[
        bool, typer.Option("--read-only", help="Mount the instance's disk read-only.")
    ] = False,
    no_chroot: Annotated[
        bool,
        typer.Option("--no-chroot", help="The rescue system's shell, the disk on /mnt."),
    ] = False,
    command: Annotated[
        str | None,
        typer.Option(
            "--command", metavar="CMD", help="Run CMD in the chroot instead of a shell."
        ),
    ] = None,
    unrescue: Annotated[
        bool, typer.Option("--unrescue", help="Unrescue when the shell ends, without asking.")
    ] = False,
    keep_rescued: Annotated[
        bool,
        typer.Option("--keep-rescued", help="Keep the instance in rescue when the shell ends."),
    ] = False,
    record: Annotated[
        Path | None,
        typer.Option(
            "--record",
            metavar="FILE",
            help="Write a timed typescript of the session (scriptreplay FILE.timing FILE).",
        ),
    ] = None,
) -> None:
    from cloudrescue.errors import InvalidInputError
    from cloudrescue.journal import Journal
    from cloudrescue.phase import DiskChoice
    from cloudrescue.rescue import RescueWorkflow
    from cloudrescue.shell.record import Recorder
    from cloudrescue.shell.session import ShellOptions, open_shell
    from cloudrescue.shell.terminal import LocalTerminal

    env = environment(ctx)
    output.chosen()
    if disk is not None and not disk.strip():
        raise InvalidInputError("--disk is empty: a device, UUID=, LABEL= or LV name")
    if command is not None and not command.strip():
        raise InvalidInputError("--command is empty")
    leave = _leave_rule(unrescue, keep_rescued)
    interactive = command is None and LocalTerminal.of_process().is_tty()
    program: Program = "command" if command is not None else "login" if interactive else "stdin"
    settings = rescue.settings()
    backend = state(ctx).cloud()
    server = backend.find_server(instance)
    confirm(
        env,
        f"This reboots {safe(server.name)} ({server.id}) into rescue mode to open a shell on "
        "its disk, then reboots it normally when you leave. Continue?",
        yes=yes,
    )
    recorder = None
    if record is not None:
        recorder = Recorder.create(record, info={"COMMAND": f"cloudrescue shell {server.name}"})
    try:
        with RichEvents(env) as events:
            terminal = ProcessTerminal(env, events, recorder, ask=interactive and leave == "ask")
            options = ShellOptions(
                disk=DiskChoice(disk, ask=root_chooser(env, events, yes=yes)),
                read_only=read_only,
                chroot=not no_chroot,
                program=program,
                command=command,
                leave=leave,
            )
            workflow = RescueWorkflow(backend, Journal(), events, settings)
            report = open_shell(workflow, server, options, terminal)
    finally:
        if recorder is not None:
            recorder.close()
    if report.signal != signal.SIGHUP:  # after a hangup there is no terminal to print on
        show_record(env, output, shell_record(report), for_people=lambda: _for_people(env, report))
    if report.signal is not None:  # cleaned up: now die of it, as the shell did
        signal.signal(report.signal, signal.SIG_DFL)
        signal.raise_signal(report.signal)
    if report.exit_status:
        raise typer.Exit(report.exit_status)


def register(root: typer.Typer) -> None:
    """Add `shell` to the root app."""
    root.command("shell", help=HELP)(shell)
