"""`cloudrescue diagnose`: why an instance is unreachable, with evidence, and which fix to run.

The CLI's part: the options (``DiagnoseOptions``), the keys and playbook files read before the
cloud is asked, and the report: the findings table for people, the ``DIAGNOSIS`` record for
scripts. The diagnosis itself is ``cloudrescue.diagnose.engine.diagnose``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from cloudrescue.cli.options import (
    DiagnoseOptions,
    Instance,
    RescueOptions,
    environment,
    state,
    takes_options,
)
from cloudrescue.cli.output import OutputOptions, show_list, show_record
from cloudrescue.cli.records import DIAGNOSIS, RUN
from cloudrescue.cli.render import safe

if TYPE_CHECKING:
    from cloudrescue.cli.environment import Environment
    from cloudrescue.cloud.base import CloudBackend
    from cloudrescue.diagnose.catalog import Catalog
    from cloudrescue.diagnose.engine import Diagnosis
    from cloudrescue.diagnose.findings import Finding
    from cloudrescue.diagnose.probe import PortProbe
    from cloudrescue.diagnose.sources import FindingSource
    from cloudrescue.keys import PublicKey
    from cloudrescue.playbook.engine import StepReport
    from cloudrescue.rescue import RescueSettings

EVIDENCE_SHOWN = 6  # evidence lines printed per finding for people (-f json has them all)

HELP = """Say why an instance is unreachable, with evidence, and which fix to run.

Changes nothing and takes a few seconds; no rescue. It reads the instance's status, task and
fault from the cloud's API, and its console log: the last boot's lines are searched for the
symptoms the playbooks declare (`cloudrescue playbooks show NAME`; --playbook FILE adds your
own) and for what no playbook cures (kernel panic, no bootable device, GRUB prompt: the finding
says what to do by hand). It probes the ports sshd should listen on (--port, 22 by default):
refused, no answer within --connect-timeout seconds, or open; when open, sshd's banner, the
methods it offers, and whether it would accept your public keys for the user, asked without
logging in (only the public key is sent; never a password).

--deep also rescues the instance once (asks first; --yes), mounts its disk read-only and runs,
in check mode, every playbook that declares deep checks and needs no parameter without a
default (the others are skipped, and the notes say so): one that would change something is a
finding of high confidence, its evidence what it would change; one that would change nothing
clears its cause. A check that cannot run is a finding of low confidence and the others run
still. It also reads root's and the cloud user's passwords in /etc/shadow (their state, never
a hash: none, expired) for reset-password, and cloud-init's state (disabled, another
instance's data, errors of its last run) for reset-cloud-init. Then it unrescues. The rescue
options (--image, --jump, --trust-host-key, the timeouts...) are every rescuing command's;
without --deep or --fix they are refused.

Findings are ranked by confidence (certain: the API says it; high, medium, low), then by the
strength of their evidence; each comes with its evidence (console lines and their numbers,
probe results, what a playbook would change on the disk) and the command that cures it. A
healthy instance gets "no problem found" and no suggestion. Exit status 0 whether a problem is
found or not (read `healthy`, `findings` with -f json); the README's codes when the diagnosis
itself fails.

--fix then applies the suggested playbooks (those of the findings of at least medium
confidence that need no parameter without a default, each once, in rank order) in one rescue,
after a confirmation that lists them (--yes), and prints the run report as `run` does (-f json:
the run's record, the diagnosis in one line on stderr), with `run`'s exit status. Nothing
suggested: nothing is done, exit status 0.
"""


def register(root: typer.Typer) -> None:
    """Add `diagnose` to the root app."""
    root.command("diagnose", help=HELP)(diagnose)


def _user(value: str | None) -> str | None:
    from cloudrescue.errors import InvalidInputError
    from cloudrescue.playbook.paramtypes import user_name

    if value is None:
        return None
    try:
        return user_name(value)
    except ValueError as error:
        raise InvalidInputError(f"--user: {error}") from None


def _keys(files: list[Path] | None) -> list[tuple[str, PublicKey]]:
    """The keys of ``--key`` files, or of the first that exists of fix-ssh-keys' default key
    files (the key a suggested ``fix-ssh-keys`` would authorise)."""
    from cloudrescue.keys import load_public_keys
    from cloudrescue.playbook import catalog
    from cloudrescue.playbook.paramtypes import key_files

    if files:
        return [(str(path), key) for path in files for key in load_public_keys(path)]
    for name in key_files(catalog.load_shipped("fix-ssh-keys").parameters["key"].default):
        path = Path(name).expanduser()
        if path.is_file():
            return [(name, key) for key in load_public_keys(path)]
    return []


def _catalog(files: list[Path] | None) -> Catalog:
    from cloudrescue.diagnose.catalog import Catalog
    from cloudrescue.playbook.schema import load_file

    return Catalog.shipped([(str(path), load_file(path)) for path in files or []])


@takes_options
def diagnose(
    ctx: typer.Context,
    instance: Instance,
    options: DiagnoseOptions,
    rescue: RescueOptions,
    output: OutputOptions,
) -> None:
    """The command (its help is ``HELP``): inputs checked, the diagnosis, the report; with
    --deep the read-only checks of the rescued disk, with --fix the suggested playbooks."""
    from cloudrescue.cli.prompts import confirm_repair
    from cloudrescue.cli.render import RichEvents
    from cloudrescue.diagnose import engine
    from cloudrescue.diagnose.probe import Prober
    from cloudrescue.errors import InvalidInputError

    output.chosen()  # a bad -f or -c, key, user or playbook fails before the cloud is asked
    output.selected(RUN.names if options.fix else DIAGNOSIS.names)
    if rescue.address is not None and not rescue.address.strip():
        raise InvalidInputError("--address is empty")
    _rescue_only(rescue, options)
    if options.disk is not None and not options.disk.strip():
        raise InvalidInputError("--disk is empty: a device, UUID=, LABEL= or LV name")
    user = _user(options.user)
    keys = _keys(options.key)
    catalog = _catalog(options.playbook)
    settings = rescue.settings()
    env = environment(ctx)
    backend = state(ctx).cloud()

    def run(sources: list[FindingSource]) -> Diagnosis:
        return engine.diagnose(
            backend,
            instance,
            catalog=catalog,
            probe=Prober(connect_timeout=options.connect_timeout),
            address=rescue.address,
            ports=tuple(dict.fromkeys(options.port or engine.DEFAULT_PORTS)),
            user=user,
            keys=keys,
            keys_given=bool(options.key),
            sources=sources,
        )

    if options.deep:
        from cloudrescue.diagnose.deep import DeepSource, inspections, select
        from cloudrescue.journal import Journal
        from cloudrescue.phase import DiskChoice
        from cloudrescue.rescue import RescueWorkflow

        server = backend.find_server(instance)
        checked, skipped = select(
            catalog.entries, {"key": [str(path) for path in options.key or []]}
        )
        if checked or inspections(catalog.entries):
            confirm_repair(env, f"{server.name} ({server.id})", yes=options.yes, dry_run=True)
        with RichEvents(env) as events:
            deep = DeepSource(
                RescueWorkflow(backend, Journal(), events, settings),
                checked,
                skipped,
                disk=DiskChoice(options.disk),
                inspect=inspections(catalog.entries),
                user=user,
            )
            result = run([deep])
    else:
        result = run([])
    if options.fix:
        if output.for_people:
            _for_people(env, result)
        else:  # stdout has the run's record: the diagnosis in one line on stderr
            env.err.print(safe_report(result), highlight=False)
        _fix(env, output, options, catalog, result, RescueWorkflowParts(backend, settings))
        return
    show_record(env, output, diagnosis_record(result), for_people=lambda: _for_people(env, result))


def safe_report(result: Diagnosis) -> str:
    """One line on the diagnosis (stderr, when --fix prints its run report as a record)."""
    top = result.top
    if top is None:
        return f"{safe(result.server.name)}: no problem found"
    return f"{safe(result.server.name)}: {safe(top.cause)}"


def _rescue_only(rescue: RescueOptions, options: DiagnoseOptions) -> None:
    """Refuse the options of a rescue (all of ``RescueOptions`` but --address) without
    --deep or --fix: the diagnosis without rescue would ignore them."""
    import dataclasses
    from typing import get_type_hints

    from cloudrescue.errors import InvalidInputError

    if options.deep or options.fix:
        return
    hints = get_type_hints(RescueOptions, include_extras=True)

    def flag(name: str) -> str:  # the option as typed (``state_timeout`` is --timeout)
        for meta in getattr(hints[name], "__metadata__", ()):
            # in ``Annotated``, typer takes the first positional name for ``default``
            first = getattr(meta, "default", None)
            declared = [first, *getattr(meta, "param_decls", ())]
            for text in declared:
                if isinstance(text, str) and text.startswith("--"):
                    return text
        return "--" + name.replace("_", "-")

    given = [
        flag(item.name)
        for item in dataclasses.fields(rescue)
        if item.name != "address" and getattr(rescue, item.name) != item.default
    ]
    if given:
        raise InvalidInputError(f"{', '.join(given)}: only with --deep or --fix (a rescue)")


@dataclass(frozen=True)
class RescueWorkflowParts:
    """What a rescue of the command needs: the cloud it asked, and the rescue settings."""

    backend: CloudBackend
    settings: RescueSettings


def _fix(
    env: Environment,
    output: OutputOptions,
    options: DiagnoseOptions,
    catalog: Catalog,
    result: Diagnosis,
    parts: RescueWorkflowParts,
) -> None:
    """Apply the suggested playbooks in one rescue (after a confirmation that lists them),
    print the run report as `run` does; nothing suggested: nothing done."""
    from cloudrescue.cli.prompts import confirm, root_chooser
    from cloudrescue.cli.render import RichEvents
    from cloudrescue.cli.reports import step_label
    from cloudrescue.cli.run import finish
    from cloudrescue.diagnose.fix import suggested
    from cloudrescue.journal import Journal
    from cloudrescue.phase import DiskChoice
    from cloudrescue.playbook.runner import run_playbooks
    from cloudrescue.rescue import RescueWorkflow

    chosen, left = suggested(result.findings, catalog)
    for reference, why in left:
        env.err.print(f"--fix: not applied: {safe(reference)} ({safe(why)})", highlight=False)
    if not chosen:
        env.err.print("--fix: no problem found that a playbook fixes: nothing done",
                      highlight=False)
        return
    server = result.server
    names = ", ".join(item.reference for item in chosen)
    confirm(
        env,
        f"This reboots {server.name} ({server.id}) into rescue mode to run {names}, then "
        "reboots it normally (downtime of a few minutes). Continue?",
        yes=options.yes,
    )
    with RichEvents(env) as events:
        workflow = RescueWorkflow(parts.backend, Journal(), events, parts.settings)

        def on_step(report: StepReport) -> None:
            events.note(f"{step_label(report, False)}: {report.step.name}")

        report = run_playbooks(
            workflow,
            server,
            [(item.playbook, item.values) for item in chosen],
            dry_run=False,
            disk=DiskChoice(options.disk, ask=root_chooser(env, events, yes=options.yes)),
            on_step=on_step,
        )
    finish(env, output, report)


def _finding_record(rank: int, finding: Finding, instance: str) -> dict[str, Any]:
    return {
        "rank": rank,
        "cause": finding.cause,
        "confidence": finding.confidence,
        "playbook": finding.playbook,
        "command": finding.command(instance),
        "advice": finding.advice_for(instance),
        "evidence": [
            {"source": item.source, "line": item.line, "text": item.text}
            for item in finding.evidence
        ],
    }


def _probe_record(probe: PortProbe) -> dict[str, Any]:
    ssh = probe.ssh
    return {
        "port": probe.port,
        "state": probe.state,
        "detail": probe.detail,
        "seconds": probe.seconds,
        "banner": ssh.banner if ssh else None,
        "host_key": ssh.host_key if ssh else None,
        "auth_methods": list(ssh.methods) if ssh and ssh.methods is not None else None,
        "keys": [
            {"fingerprint": k.fingerprint, "type": k.key_type, "file": k.source,
             "accepted": k.accepted}
            for k in (ssh.keys if ssh else ())
        ],
        "error": ssh.error if ssh else None,
    }


def diagnosis_record(result: Diagnosis) -> dict[str, Any]:
    """What ``diagnose -f json|yaml|value|csv`` prints (``records.DIAGNOSIS``)."""
    seen, server, top = result.seen, result.server, result.top
    return {
        "instance": server.name,
        "instance_id": server.id,
        "status": server.status,
        "task_state": server.task_state,
        "fault": server.fault,
        "address": seen.address,
        "healthy": result.healthy,
        "playbook": top.playbook if top else None,
        "command": top.command(server.name) if top else None,
        "findings": [
            _finding_record(rank, finding, server.name)
            for rank, finding in enumerate(result.findings, start=1)
        ],
        "probes": [_probe_record(probe) for probe in seen.probes],
        "user": seen.user,
        "user_guessed": seen.user_guessed,
        "user_source": seen.user_source,
        "console_lines": seen.boot.total,
        "boot_line": seen.boot.start,
        "notes": list(result.notes),
        "seconds": result.seconds,
    }


def _probe_line(probe: PortProbe) -> str:
    ssh = probe.ssh
    parts = [probe.describe()]
    if ssh is not None and ssh.banner:
        parts.append(ssh.banner)
    if ssh is not None and ssh.methods is not None:
        parts.append(f"offers {', '.join(ssh.methods) or 'nothing'}")
    for key in ssh.keys if ssh else ():
        verdict = "would be accepted" if key.accepted else "refused"
        parts.append(f"key {key.fingerprint} {verdict} for {ssh.user if ssh else ''}")
    return "; ".join(parts)


def _for_people(env: Environment, result: Diagnosis) -> None:
    """The findings table (the likeliest first), each finding's evidence, what to run."""
    server, seen = result.server, result.seen
    where = f", {seen.address}" if seen.address else ""
    env.out.print(f"[bold]{safe(server.name)}[/] ({safe(server.status)}{safe(where)}): ", end="")
    if result.healthy:
        env.out.print("[green]no problem found[/] (nothing to change)")
    else:
        count = len(result.findings)
        env.out.print(f"{count} finding{'s' if count > 1 else ''}, the likeliest first")
        rows = [
            {
                "#": str(rank),
                "confidence": finding.confidence,
                "cause": finding.cause,
                "fix": finding.command(server.name)
                or f"by hand: {finding.advice_for(server.name)}",
            }
            for rank, finding in enumerate(result.findings, start=1)
        ]
        show_list(env, OutputOptions(), FINDING_COLUMNS, rows)
        for rank, finding in enumerate(result.findings, start=1):
            env.out.print(f"evidence for [bold]{rank}[/]:")
            for item in finding.evidence[:EVIDENCE_SHOWN]:
                env.out.print(f"    {safe(item.describe())}", highlight=False)
            hidden = len(finding.evidence) - EVIDENCE_SHOWN
            if hidden > 0:
                env.out.print(f"    [dim]... {hidden} more (-f json)[/]")
    for probe in seen.probes:
        env.out.print(f"sshd: {safe(_probe_line(probe))}", highlight=False)
    for note in result.notes:
        env.out.print(f"[dim]note: {safe(note)}[/]", highlight=False)
    top = result.top
    command = top.command(server.name) if top else None
    if command:
        env.out.print(f"run: [bold]{safe(command)}[/]", highlight=False)


FINDING_COLUMNS = ("#", "confidence", "cause", "fix")
