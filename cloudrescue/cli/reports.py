"""Rendering what a playbook run did: each step, its diffs and commands, the final state."""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

from cloudrescue.cli.render import printable, safe, stdout

if TYPE_CHECKING:
    from cloudrescue.playbook.engine import StepReport
    from cloudrescue.playbook.runner import RunReport

STATUS_STYLE = {"changed": "yellow", "ok": "green", "skipped": "dim", "failed": "red"}
INDENT = " " * 9


def step_label(step: StepReport, dry_run: bool) -> str:
    """A step's status as shown: ``would change`` in check mode."""
    return "would change" if dry_run and step.status == "changed" else step.status


def _render_step(step: StepReport, dry_run: bool) -> None:
    style = STATUS_STYLE[step.status]
    note = f" [dim]({safe(step.note)})[/]" if step.note else ""
    stdout.print(f"[{style}]{step_label(step, dry_run):<8}[/] {safe(step.step.name)}{note}")
    for change in step.outcome.changes:
        stdout.print(f"{INDENT}{'would: ' if dry_run else ''}{safe(change.detail)}")
        if dry_run and change.diff:
            stdout.out(printable(change.diff), end="", highlight=False)
    if step.outcome.report:
        stdout.out(textwrap.indent(printable(step.outcome.report), INDENT), highlight=False)
    for command in step.outcome.commands:
        argv = safe(" ".join(command.argv))
        if command.ran:
            stdout.print(f"{INDENT}ran ({command.where}): {argv} → exit {command.exit_code}")
            if command.output:
                stdout.out(textwrap.indent(printable(command.output), INDENT), highlight=False)
        else:
            stdout.print(f"{INDENT}would run ({command.where}): {argv}")


def render_run(report: RunReport) -> None:
    """Print each step's status, diffs in check mode, skipped mounts and the final state."""
    name = safe(report.server.name)
    if report.mount is not None:
        for skipped in report.mount.skipped:
            stdout.print(
                f"[yellow]skipped mount[/] {safe(skipped.mountpoint)} ({safe(skipped.spec)}): "
                f"{safe(skipped.reason)}"
            )
    for step in report.result.steps:
        _render_step(step, report.dry_run)
    counts = {
        status: sum(1 for step in report.result.steps if step.status == status)
        for status in ("changed", "ok", "skipped")
    }
    verb = "would change" if report.dry_run else "changed"
    stdout.print(
        f"[bold]{safe(report.playbook.name)}[/] on [bold]{name}[/]: {counts['changed']} {verb}, "
        f"{counts['ok']} ok, {counts['skipped']} skipped."
    )
    if report.dry_run:
        stdout.print("Dry run: nothing was changed on the disk.")
    elif not report.changed:
        stdout.print(f"[bold]{name}[/]: ok, nothing needed changing.")
    if report.unmount is not None and not report.unmount.ok:
        stdout.print(f"[red]unmount problems:[/] {safe('; '.join(report.unmount.failed))}")
    stdout.print(f"[bold]{name}[/] is {report.server.status} again.")
    if report.result.message and not report.dry_run:
        stdout.print(safe(report.result.message))
