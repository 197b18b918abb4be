"""What a playbook run did: for people (each step, its diffs and commands, the final state)
and as one record for scripts (``-f json``; its fields are documented in docs/output.md)."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from cloudrescue.cli.environment import Environment
from cloudrescue.cli.output import OutputOptions, show_record
from cloudrescue.cli.render import printable, safe

if TYPE_CHECKING:
    from cloudrescue.playbook.engine import StepReport
    from cloudrescue.playbook.runner import PlaybookRun, RunReport

STATUS_STYLE = {"changed": "yellow", "ok": "green", "skipped": "dim", "failed": "red"}
RUN_STYLE = {**STATUS_STYLE, "not-run": "dim"}
COUNTED = ("changed", "ok", "skipped")
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


def _counts(steps: Sequence[StepReport]) -> dict[str, int]:
    return {status: sum(1 for step in steps if step.status == status) for status in COUNTED}


def _playbook_record(run: PlaybookRun, dry_run: bool) -> dict[str, Any]:
    return {
        "playbook": run.playbook.name,
        "result": run.status,
        **_counts(run.result.steps),
        "message": None if dry_run else run.result.message,
        "error": run.error.message if run.error is not None else None,
        "steps": [_step_record(step) for step in run.result.steps],
    }


def _result(report: RunReport) -> str:
    """The run's result: ``failed``, else ``changed`` or ``ok``."""
    return "failed" if report.failed is not None else "changed" if report.changed else "ok"


def run_record(report: RunReport) -> dict[str, Any]:
    """The run as one record (stable field names; ``playbooks`` has each playbook's part)."""
    steps = report.result.steps
    mounts = [run.mount for run in report.runs if run.mount is not None]
    skipped = {  # the same fstab entry, skipped by several phases, once
        (skip.mountpoint, skip.spec, skip.reason): None
        for mount in mounts
        for skip in mount.skipped
    }
    return {
        "instance": report.server.name,
        "instance_id": report.server.id,
        "playbook": " ".join(run.playbook.name for run in report.runs),
        "dry_run": report.dry_run,
        **_counts(steps),
        "status": report.server.status,
        "message": None if report.dry_run else report.result.message,
        "root": mounts[0].device if mounts else None,
        "skipped_mounts": [
            {"mountpoint": mountpoint, "spec": spec, "reason": reason}
            for mountpoint, spec, reason in skipped
        ],
        "unmount_problems": [
            problem for run in report.runs if run.unmount for problem in run.unmount.failed
        ],
        "steps": [_step_record(step) for step in steps],
        "result": _result(report),
        "playbooks": [_playbook_record(run, report.dry_run) for run in report.runs],
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


def _run_label(run: PlaybookRun, dry_run: bool) -> str:
    return "would change" if dry_run and run.status == "changed" else run.status.replace("-", " ")


def _for_people(env: Environment, report: RunReport) -> None:
    out = env.out
    name = safe(report.server.name)
    several = len(report.runs) > 1
    for run in report.runs:
        if several:
            label = f"[{RUN_STYLE[run.status]}]{_run_label(run, report.dry_run)}[/]"
            out.print(f"[bold]playbook {safe(run.playbook.name)}[/]: {label}")
        for skipped in run.mount.skipped if run.mount is not None else ():
            out.print(
                f"[yellow]skipped mount[/] {safe(skipped.mountpoint)} ({safe(skipped.spec)}): "
                f"{safe(skipped.reason)}"
            )
        for step in run.result.steps:
            _render_step(env, step, report.dry_run)
    counts = _counts(report.result.steps)
    verb = "would change" if report.dry_run else "changed"
    names = ", ".join(run.playbook.name for run in report.runs)
    out.print(
        f"[bold]{safe(names)}[/] on [bold]{name}[/]: {counts['changed']} {verb}, "
        f"{counts['ok']} ok, {counts['skipped']} skipped."
    )
    failed = report.failed
    if report.dry_run:
        out.print("Dry run: nothing was changed on the disk.")
    if failed is not None and failed.error is not None:
        out.print(f"[red]{safe(failed.playbook.name)} failed:[/] {safe(failed.error.message)}")
        kept = [run.playbook.name for run in report.runs if run.status == "changed"]
        if kept and not report.dry_run:
            out.print(f"Kept: what {safe(', '.join(kept))} changed.")
        not_run = [run.playbook.name for run in report.runs if run.status == "not-run"]
        if not_run:
            out.print(f"Not run: {safe(', '.join(not_run))}.")
    elif not report.dry_run and not report.changed:
        out.print(f"[bold]{name}[/]: ok, nothing needed changing.")
    problems = [problem for run in report.runs if run.unmount for problem in run.unmount.failed]
    if problems:
        out.print(f"[red]unmount problems:[/] {safe('; '.join(problems))}")
    out.print(f"[bold]{name}[/] is {report.server.status} again.")
    for run in report.runs:
        if run.result.message and not report.dry_run:
            out.print(safe(run.result.message))


def render_run(env: Environment, output: OutputOptions, report: RunReport) -> None:
    """The run's result in the chosen format (the step-by-step report for people)."""
    show_record(env, output, run_record(report), for_people=lambda: _for_people(env, report))
