"""What a playbook run did: for people (each step, its diffs and commands, the final state)
and as one record for scripts (``-f json``; its fields are documented in docs/output.md)."""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING, Any

from cloudrescue.cli.environment import Environment
from cloudrescue.cli.output import OutputOptions, show_record
from cloudrescue.cli.render import printable, safe

if TYPE_CHECKING:
    from cloudrescue.playbook.engine import StepReport
    from cloudrescue.playbook.runner import RunReport

STATUS_STYLE = {"changed": "yellow", "ok": "green", "skipped": "dim", "failed": "red"}
INDENT = " " * 9


def step_label(step: StepReport, dry_run: bool) -> str:
    """A step's status as shown: ``would change`` in check mode."""
    return "would change" if dry_run and step.status == "changed" else step.status


def _step_record(step: StepReport) -> dict[str, Any]:
    return {
        "name": step.step.name,
        "action": step.step.action.name,
        "status": step.status,
        "note": step.note,
        "changes": [
            {"kind": change.kind, "path": change.path, "detail": change.detail, "diff": change.diff}
            for change in step.outcome.changes
        ],
        "commands": [
            {
                "where": command.where,
                "argv": list(command.argv),
                "ran": command.ran,
                "exit_code": command.exit_code,
                "output": command.output,
            }
            for command in step.outcome.commands
        ],
        "report": step.outcome.report,
    }


def run_record(report: RunReport) -> dict[str, Any]:
    """The run as one record (stable field names)."""
    steps = report.result.steps
    return {
        "instance": report.server.name,
        "instance_id": report.server.id,
        "playbook": report.playbook.name,
        "dry_run": report.dry_run,
        "changed": sum(1 for step in steps if step.status == "changed"),
        "ok": sum(1 for step in steps if step.status == "ok"),
        "skipped": sum(1 for step in steps if step.status == "skipped"),
        "status": report.server.status,
        "message": None if report.dry_run else report.result.message,
        "root": report.mount.device if report.mount is not None else None,
        "skipped_mounts": [
            {"mountpoint": skip.mountpoint, "spec": skip.spec, "reason": skip.reason}
            for skip in (report.mount.skipped if report.mount is not None else ())
        ],
        "unmount_problems": list(report.unmount.failed) if report.unmount is not None else [],
        "steps": [_step_record(step) for step in steps],
    }


def _render_step(env: Environment, step: StepReport, dry_run: bool) -> None:
    out = env.out
    style = STATUS_STYLE[step.status]
    note = f" [dim]({safe(step.note)})[/]" if step.note else ""
    out.print(f"[{style}]{step_label(step, dry_run):<8}[/] {safe(step.step.name)}{note}")
    for change in step.outcome.changes:
        out.print(f"{INDENT}{'would: ' if dry_run else ''}{safe(change.detail)}")
        if dry_run and change.diff:
            out.out(printable(change.diff), end="", highlight=False)
    if step.outcome.report:
        out.out(textwrap.indent(printable(step.outcome.report), INDENT), highlight=False)
    for command in step.outcome.commands:
        argv = safe(" ".join(command.argv))
        if command.ran:
            out.print(f"{INDENT}ran ({command.where}): {argv} → exit {command.exit_code}")
            if command.output:
                out.out(textwrap.indent(printable(command.output), INDENT), highlight=False)
        else:
            out.print(f"{INDENT}would run ({command.where}): {argv}")


def _for_people(env: Environment, report: RunReport) -> None:
    out = env.out
    name = safe(report.server.name)
    if report.mount is not None:
        for skipped in report.mount.skipped:
            out.print(
                f"[yellow]skipped mount[/] {safe(skipped.mountpoint)} ({safe(skipped.spec)}): "
                f"{safe(skipped.reason)}"
            )
    for step in report.result.steps:
        _render_step(env, step, report.dry_run)
    counts = {
        status: sum(1 for step in report.result.steps if step.status == status)
        for status in ("changed", "ok", "skipped")
    }
    verb = "would change" if report.dry_run else "changed"
    out.print(
        f"[bold]{safe(report.playbook.name)}[/] on [bold]{name}[/]: {counts['changed']} {verb}, "
        f"{counts['ok']} ok, {counts['skipped']} skipped."
    )
    if report.dry_run:
        out.print("Dry run: nothing was changed on the disk.")
    elif not report.changed:
        out.print(f"[bold]{name}[/]: ok, nothing needed changing.")
    if report.unmount is not None and not report.unmount.ok:
        out.print(f"[red]unmount problems:[/] {safe('; '.join(report.unmount.failed))}")
    out.print(f"[bold]{name}[/] is {report.server.status} again.")
    if report.result.message and not report.dry_run:
        out.print(safe(report.result.message))


def render_run(env: Environment, output: OutputOptions, report: RunReport) -> None:
    """The run's result in the chosen format (the step-by-step report for people)."""
    show_record(env, output, run_record(report), for_people=lambda: _for_people(env, report))
