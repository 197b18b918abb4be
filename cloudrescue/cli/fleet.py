"""`cloudrescue fleet ...`: many instances at once, chosen by one selection (docs/fleet.md)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cloudrescue.cli.options import (
    ParamOptions,
    PasswordOptions,
    PlaybookRef,
    RateOptions,
    RepairOptions,
    RescueOptions,
    SelectionOptions,
    SshKeysOptions,
    Yes,
    environment,
    state,
    takes_options,
)
from cloudrescue.cli.output import OutputOptions, show_list
from cloudrescue.cli.records import (
    FLEET_DIAGNOSIS,
    FLEET_MEMBERS,
    FLEET_PLAN,
    FLEET_RESULT,
    FLEET_RUNS,
)

if TYPE_CHECKING:
    from cloudrescue.cli.environment import Environment
    from cloudrescue.cli.fleet_view import FleetView
    from cloudrescue.cli.run import SecretSource
    from cloudrescue.cloud.base import ServerInfo
    from cloudrescue.diagnose.engine import Diagnosis
    from cloudrescue.diagnose.many import Diagnosed
    from cloudrescue.fleet.journal import FleetRun
    from cloudrescue.fleet.pacing import Pacing
    from cloudrescue.fleet.repair import FleetReport
    from cloudrescue.fleet.runner import Outcome
    from cloudrescue.fleet.selection import Selected
    from cloudrescue.playbook.schema import Playbook

FleetOptions = tuple[RepairOptions, RescueOptions, SelectionOptions, RateOptions, OutputOptions]
FIRST_NAMES = 5  # how many names the confirmation shows
Report = Annotated[
    Path | None,
    typer.Option(
        "--report",
        metavar="FILE",
        help="Also write the per-instance results to FILE as JSON (the `-f json` records).",
    ),
]

app = typer.Typer(
    help="Many instances at once, chosen by names, globs, tags, metadata or status.",
    no_args_is_help=True,
)


@app.command()
@takes_options
def plan(
    ctx: typer.Context,
    selection: SelectionOptions,
    rate: RateOptions,
    output: OutputOptions,
) -> None:
    """Show the instances a fleet command would act on, why each is selected, and the batches
    they would go in. Changes nothing.

    Names, IDs and globs name instances; --tag, --any-tag, --not-tag, --metadata, --status and
    --name-regex filter them (or, alone, the whole project); --all selects every instance.
    """
    from cloudrescue.fleet.selection import resolve

    env = environment(ctx)
    output.chosen()  # a bad -f or -c fails before the cloud is asked
    output.selected(FLEET_PLAN.names)
    chosen = selection.selection(env)
    pacing = rate.pacing()
    selected = resolve(state(ctx).cloud(api_rate=rate.api_rate), chosen)
    rows = plan_rows(selected, pacing)
    show_list(env, output, FLEET_PLAN.names, rows)
    if output.for_people:
        env.out.print(_summary(len(selected), pacing), markup=False, highlight=False)


@app.command("diagnose")
@takes_options
def diagnose(
    ctx: typer.Context,
    selection: SelectionOptions,
    output: OutputOptions,
    key: Annotated[
        list[Path] | None,
        typer.Option(
            "--key",
            metavar="FILE",
            help="Public key file sshd is asked about, without logging in (repeatable; "
            "default as for `diagnose`).",
        ),
    ] = None,
    concurrency: Annotated[
        int,
        typer.Option("--concurrency", metavar="N", min=1, max=64,
                     help="Instances diagnosed at a time."),
    ] = 8,
) -> None:
    """Diagnose every selected instance without rescue (as `cloudrescue diagnose`, changing
    nothing): one line per instance (its top finding and the command that cures it), then a
    count per cause. Exit status 0 whether problems are found or not."""
    from cloudrescue.cli.diagnose import _catalog, _keys
    from cloudrescue.diagnose import engine
    from cloudrescue.diagnose.many import diagnose_many
    from cloudrescue.diagnose.probe import Prober
    from cloudrescue.fleet.selection import resolve

    env = environment(ctx)
    output.chosen()
    output.selected(FLEET_DIAGNOSIS.names)
    chosen = selection.selection(env)
    keys = _keys(key)
    catalog = _catalog(None)
    backend = state(ctx).cloud()
    selected = resolve(backend, chosen)
    prober = Prober()

    def one(server: ServerInfo) -> Diagnosis:
        return engine.diagnose(backend, server.id, catalog=catalog, probe=prober, keys=keys,
                               keys_given=bool(key))

    results = diagnose_many([item.server for item in selected], one, workers=concurrency)
    show_list(env, output, FLEET_DIAGNOSIS.names, diagnosis_rows(results))
    if output.for_people:
        _cause_counts(env, results)


def diagnosis_rows(results: Sequence[Diagnosed]) -> list[dict[str, Any]]:
    """The rows of ``fleet diagnose`` (``FLEET_DIAGNOSIS``'s fields)."""
    rows: list[dict[str, Any]] = []
    for item in results:
        found = item.diagnosis
        top = found.top if found is not None else None
        rows.append(
            {
                "instance": item.server.name,
                "instance_id": item.server.id,
                "status": found.server.status if found is not None else item.server.status,
                "healthy": found.healthy if found is not None else None,
                "cause": item.cause,
                "confidence": top.confidence if top is not None else None,
                "playbook": top.playbook if top is not None else None,
                "command": top.command(item.server.name) if top is not None else None,
                "findings": len(found.findings) if found is not None else 0,
                "error": item.error.message if item.error is not None else None,
            }
        )
    return rows


def _cause_counts(env: Environment, results: Sequence[Diagnosed]) -> None:
    from cloudrescue.cli.render import safe
    from cloudrescue.diagnose.many import count_causes

    count = len(results)
    env.out.print(f"{count} instance{'s' if count != 1 else ''} diagnosed, by cause:",
                  highlight=False)
    for cause, playbook, times in count_causes(results):
        cure = f" ({playbook})" if playbook else ""
        env.out.print(f"  {times:4}  {safe(cause)}{safe(cure)}", highlight=False)


def plan_rows(selected: list[Selected], pacing: Pacing) -> list[dict[str, Any]]:
    """The rows of ``fleet plan`` (``FLEET_PLAN``'s fields), in the order the run takes."""
    from cloudrescue.errors import InvalidInputError
    from cloudrescue.rescue import pick_address

    batches = [
        number
        for number, size in enumerate(pacing.batch_sizes(len(selected)), start=1)
        for _ in range(size)
    ]
    rows: list[dict[str, Any]] = []
    for item, batch in zip(selected, batches, strict=True):
        try:
            address: str | None = pick_address(item.server)
        except InvalidInputError:
            address = None
        server = item.server
        rows.append(
            {
                "name": server.name,
                "id": server.id,
                "status": server.status,
                "address": address,
                "batch": batch,
                "why": ", ".join(item.why),
            }
        )
    return rows


def _summary(count: int, pacing: Pacing) -> str:
    sizes = pacing.batch_sizes(count)
    instances = f"{count} instance{'s' if count != 1 else ''}"
    batches = f"{len(sizes)} batch{'es' if len(sizes) != 1 else ''}"
    ramp = ", ".join(str(step) for step in pacing.slow_start())
    return (
        f"{instances} in {batches} ({', '.join(str(size) for size in sizes)}), at most "
        f"{pacing.concurrency} at a time (slow start {ramp}); nothing was changed"
    )


def _confirm(env: Environment, servers: Sequence[Any], *, yes: bool, dry_run: bool) -> None:
    from cloudrescue.cli.prompts import confirm_repair

    names = ", ".join(server.name for server in servers[:FIRST_NAMES])
    more = f" and {len(servers) - FIRST_NAMES} more" if len(servers) > FIRST_NAMES else ""
    count = f"{len(servers)} instance{'s' if len(servers) != 1 else ''}"
    confirm_repair(env, f"{count} ({names}{more})", yes=yes, dry_run=dry_run)


def execute(
    ctx: typer.Context,
    playbook: Playbook,
    given: Mapping[str, Sequence[str]],
    secret: SecretSource,
    options: FleetOptions,
    report_file: Path | None,
    *,
    command: str,
    source: str,
) -> None:
    """Check every value, select, confirm, then run ``playbook`` on the fleet and report."""
    from cloudrescue.errors import InvalidInputError
    from cloudrescue.fleet.repair import FleetPlaybook, FleetRepair
    from cloudrescue.fleet.selection import resolve
    from cloudrescue.journal import Journal
    from cloudrescue.playbook.engine import check_values
    from cloudrescue.playbook.params import resolve as resolve_values

    repair, rescue, selection, rate, output = options
    if repair.disk is not None and not repair.disk.strip():
        raise InvalidInputError("--disk is empty: a device, UUID=, LABEL= or LV name")
    env = environment(ctx)
    output.chosen()
    output.selected(FLEET_RESULT.names)
    chosen = selection.selection(env)
    pacing, budget = rate.pacing(), rate.budget()
    settings = rescue.settings()
    values = resolve_values(playbook, given, secret)
    check_values(playbook, values)
    backend = state(ctx).cloud(api_rate=rate.api_rate)
    servers = [item.server for item in resolve(backend, chosen)]
    _confirm(env, servers, yes=repair.yes, dry_run=repair.dry_run)
    work = FleetPlaybook(
        playbook, values, given, source=source, dry_run=repair.dry_run, disk=repair.disk
    )
    fleet = FleetRepair(backend, Journal(), settings)
    _run_and_report(env, output, report_file, len(servers), lambda view: fleet.run(
        servers, work, pacing, budget, view, command=command))  # fmt: skip


def _run_and_report(
    env: Environment,
    output: OutputOptions,
    report_file: Path | None,
    total: int,
    start: Callable[[FleetView], FleetReport],
) -> None:
    from cloudrescue.cli.fleet_view import FleetView
    from cloudrescue.errors import PartialFleetError

    with FleetView(env, total) as view:
        report = start(view)
    rows = [outcome_record(report.fleet_id, outcome) for outcome in report.result.outcomes]
    if report_file is not None:
        _write_report(report_file, rows)
    if output.for_people:
        _render_summary(env, report)
    else:
        show_list(env, output, FLEET_RESULT.names, rows)
    failed = [o for o in report.result.outcomes if o.result not in ("changed", "ok", "skipped")]
    if report.result.interrupted:
        raise KeyboardInterrupt
    if failed:
        counts = _counts(report.result.outcomes)
        raise PartialFleetError(
            f"fleet run {report.fleet_id}: {counts}"
            + (f"; {report.result.stopped}" if report.result.stopped else ""),
            hint=f"`cloudrescue fleet show {report.fleet_id}` lists the results; "
            f"`cloudrescue fleet resume {report.fleet_id} --continue` runs those not started",
        )


def _counts(outcomes: Sequence[Outcome]) -> str:
    order = ("changed", "ok", "skipped", "failed", "interrupted", "not-started")
    found = {result: sum(1 for o in outcomes if o.result == result) for result in order}
    return ", ".join(f"{count} {result}" for result, count in found.items() if count)


def outcome_record(fleet_id: str, outcome: Outcome) -> dict[str, Any]:
    """One instance of a fleet run as a ``FLEET_RESULT`` record."""
    error = outcome.error
    report = outcome.report
    changes = report.result.changes if report is not None else []
    return {
        "fleet_id": fleet_id,
        "instance": outcome.server.name,
        "instance_id": outcome.server.id,
        "batch": outcome.batch,
        "result": outcome.result,
        "changes": [
            {"kind": change.kind, "path": change.path, "detail": change.detail}
            for change in changes
        ],
        "error": error.message if error is not None else None,
        "exit_status": error.exit_status.name if error is not None else None,
        "elapsed": outcome.elapsed,
        "stages": [{"stage": stage, "seconds": seconds} for stage, seconds in outcome.stages],
    }


def _write_report(path: Path, rows: list[dict[str, Any]]) -> None:
    from cloudrescue.errors import InvalidInputError

    try:
        path.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    except OSError as error:
        raise InvalidInputError(f"--report {path}: cannot write it ({error.strerror})") from None


def _render_summary(env: Environment, report: FleetReport) -> None:
    from rich.table import Table

    from cloudrescue.cli.fleet_view import RESULT_STYLE
    from cloudrescue.cli.render import one_line, safe

    table = Table("instance", "result", "changes", "elapsed", "error", box=None, pad_edge=False,
                  header_style="bold")  # fmt: skip
    for outcome in report.result.outcomes:
        changes = len(outcome.report.result.changes) if outcome.report is not None else 0
        error = one_line(outcome.error.message) if outcome.error is not None else ""
        style = RESULT_STYLE.get(outcome.result, "")
        table.add_row(safe(outcome.server.name), f"[{style}]{outcome.result}[/]", str(changes),
                      f"{outcome.elapsed:.0f} s", error)  # fmt: skip
    env.out.print(table)
    verb = " (dry run: nothing was changed)" if report.dry_run else ""
    env.out.print(
        f"fleet run {report.fleet_id} ({report.playbook.name}): "
        f"{_counts(report.result.outcomes)}{verb}.",
        markup=False,
        highlight=False,
    )
    if report.result.stopped and not report.result.interrupted:
        env.out.print(f"Stopped early: {report.result.stopped}.", markup=False, highlight=False)


def _secrets(ctx: typer.Context, flag: str, from_stdin: bool) -> SecretSource:
    from cloudrescue.cli.run import secret_source

    return secret_source(environment(ctx), flag, from_stdin)


@app.command("run")
@takes_options
def run_playbook(
    ctx: typer.Context,
    playbook: PlaybookRef,
    selection: SelectionOptions,
    rate: RateOptions,
    repair: RepairOptions,
    rescue: RescueOptions,
    output: OutputOptions,
    params: ParamOptions,
    report: Report = None,
) -> None:
    """Run a playbook on every selected instance: each is rescued, repaired and unrescued,
    several at a time (--concurrency, --batches, --max-errors).

    Ends with a table of every instance's result; exit status 12 (PARTIAL) when some failed
    or were not started.
    """
    from cloudrescue.playbook import catalog

    loaded = catalog.find(playbook)
    given = params.given()
    secret = _secrets(ctx, "--secret-stdin", params.secret_stdin)
    source = str(Path(playbook).resolve()) if catalog.is_file_reference(playbook) else playbook
    options = (repair, rescue, selection, rate, output)
    execute(ctx, loaded, given, secret, options, report, command=f"run {loaded.name}",
            source=source)  # fmt: skip


def _named(
    ctx: typer.Context,
    name: str,
    given: Mapping[str, Sequence[str]],
    secret: SecretSource,
    options: FleetOptions,
    report: Path | None,
) -> None:
    """A named fix's fleet command: its shipped playbook, journalled under its name."""
    from cloudrescue.playbook import catalog

    playbook = catalog.load_shipped(name)
    execute(ctx, playbook, given, secret, options, report, command=name, source=name)


@app.command("fix-ssh-keys")
@takes_options
def fix_ssh_keys(
    ctx: typer.Context,
    selection: SelectionOptions,
    rate: RateOptions,
    repair: RepairOptions,
    rescue: RescueOptions,
    output: OutputOptions,
    keys: SshKeysOptions,
    report: Report = None,
) -> None:
    """`fix-ssh-keys` on every selected instance (see `cloudrescue fix-ssh-keys --help`)."""
    secret = _secrets(ctx, "--secret-stdin", False)
    _named(ctx, "fix-ssh-keys", keys.given(), secret, (repair, rescue, selection, rate, output),
           report)  # fmt: skip


@app.command("reset-password")
@takes_options
def reset_password(
    ctx: typer.Context,
    selection: SelectionOptions,
    rate: RateOptions,
    repair: RepairOptions,
    rescue: RescueOptions,
    output: OutputOptions,
    password: PasswordOptions,
    report: Report = None,
) -> None:
    """`reset-password` on every selected instance, the same password for all (asked once;
    see `cloudrescue reset-password --help`)."""
    secret = _secrets(ctx, "--password-stdin", password.password_stdin)
    options = (repair, rescue, selection, rate, output)
    _named(ctx, "reset-password", password.given(), secret, options, report)


def _state_of(run: FleetRun) -> str:
    return "died" if run.state == "running" and not run.process_alive else run.state


@app.command("list")
@takes_options
def list_runs(ctx: typer.Context, output: OutputOptions) -> None:
    """List the fleet runs of the journal, newest first."""
    from cloudrescue.fleet.journal import FleetJournal
    from cloudrescue.journal import Journal

    env = environment(ctx)
    output.chosen()
    rows = [
        {
            "fleet_id": run.fleet_id,
            "started_at": run.started_at,
            "command": run.command,
            "dry_run": run.dry_run,
            "state": _state_of(run),
            "instances": len(run.members),
            "results": " ".join(f"{k}={v}" for k, v in sorted(run.counts().items())),
        }
        for run in FleetJournal(Journal()).runs()
    ]
    show_list(env, output, FLEET_RUNS.names, rows, empty="No fleet run in the journal.")


@app.command("show")
@takes_options
def show_run(
    ctx: typer.Context,
    fleet_id: Annotated[str, typer.Argument(metavar="RUN", help="Fleet run ID (`fleet list`).")],
    output: OutputOptions,
) -> None:
    """Show each instance of a fleet run: its result, its error, its rescue if still open."""
    from cloudrescue.fleet.journal import FleetJournal
    from cloudrescue.journal import Journal

    env = environment(ctx)
    output.chosen()
    journal = Journal()
    run = FleetJournal(journal).get(fleet_id)
    open_rescues = {
        entry.server_id: entry.state
        for entry in journal.entries()
        if entry.fleet_id == fleet_id
    }
    rows = [
        {
            "position": member.position,
            "instance": member.server_name,
            "instance_id": member.server_id,
            "result": member.result,
            "error": member.error or None,
            "exit_status": member.exit_status or None,
            "rescue": open_rescues.get(member.server_id),
        }
        for member in run.members
    ]
    show_list(env, output, FLEET_MEMBERS.names, rows)
    if output.for_people:
        env.out.print(
            f"fleet run {run.fleet_id}: {run.command}"
            f"{' (dry run)' if run.dry_run else ''}, {_state_of(run)}, started {run.started_at}",
            markup=False,
            highlight=False,
        )


@app.command("resume")
@takes_options
def resume(
    ctx: typer.Context,
    fleet_id: Annotated[str, typer.Argument(metavar="RUN", help="Fleet run ID (`fleet list`).")],
    rate: RateOptions,
    rescue: RescueOptions,
    output: OutputOptions,
    report: Report = None,
    go_on: Annotated[
        bool,
        typer.Option(
            "--continue",
            help="Then run the instances that never ran (not started, interrupted), with the "
            "same playbook and parameters; those done are skipped.",
        ),
    ] = False,
    yes: Yes = False,
    disk: Annotated[
        str | None,
        typer.Option(
            "--disk",
            metavar="DEVICE|UUID=|LABEL=",
            help="With --continue: which filesystem is the root (as the run was given it).",
        ),
    ] = None,
    secret_stdin: Annotated[
        bool,
        typer.Option(
            "--secret-stdin",
            help="With --continue: read the playbook's secret parameters from stdin.",
        ),
    ] = False,
) -> None:
    """Unrescue what a fleet run left in rescue (it was killed, or Ctrl-C'd twice); with
    --continue, then finish its instances that never ran."""
    from cloudrescue.cli.prompts import confirm
    from cloudrescue.fleet.journal import FleetJournal
    from cloudrescue.fleet.repair import FleetPlaybook, FleetRepair
    from cloudrescue.journal import Journal
    from cloudrescue.playbook import catalog
    from cloudrescue.playbook.engine import check_values
    from cloudrescue.playbook.params import resolve as resolve_values

    env = environment(ctx)
    output.chosen()
    pacing, budget = rate.pacing(), rate.budget()
    settings = rescue.settings()
    journal = Journal()
    run = FleetJournal(journal).get(fleet_id)
    fleet = FleetRepair(state(ctx).cloud(api_rate=rate.api_rate), journal, settings)
    left = [e for e in journal.entries() if e.fleet_id == fleet_id and not e.process_alive]
    if left:
        names = ", ".join(entry.server_name for entry in left[:FIRST_NAMES])
        confirm(env, f"Unrescue {len(left)} instance(s) fleet run {fleet_id} left in rescue "
                f"({names})?", yes=yes)  # fmt: skip
    for line in fleet.resume(run):
        env.err.print(line, markup=False, highlight=False)
    if not go_on:
        if not left:
            env.err.print(f"fleet run {fleet_id} left nothing in rescue.", markup=False)
        return
    playbook = catalog.find(run.playbook)
    secret = _secrets(ctx, "--secret-stdin", secret_stdin)
    values = resolve_values(playbook, run.params, secret)
    check_values(playbook, values)
    servers = fleet.to_continue(run)
    _confirm(env, servers, yes=yes, dry_run=run.dry_run)
    work = FleetPlaybook(
        playbook, values, run.params, source=run.playbook, dry_run=run.dry_run, disk=disk
    )
    _run_and_report(env, output, report, len(servers), lambda view: fleet.run(
        servers, work, pacing, budget, view, command=run.command, fleet_id=fleet_id))  # fmt: skip
