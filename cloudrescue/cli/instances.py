"""`rescue`, `unrescue`, `status`, `resume`: rescue mode itself, journalled."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from cloudrescue.cli.options import Instance, RescueOptions, Timeout, state, takes_options
from cloudrescue.cli.render import RichEvents, safe, stderr, stdout

if TYPE_CHECKING:
    from cloudrescue.journal import JournalEntry


@takes_options
def rescue(
    ctx: typer.Context,
    instance: Instance,
    options: RescueOptions,
    key: Annotated[
        list[Path] | None,
        typer.Option("--key", help="Also authorise this public key for root on the rescue system."),
    ] = None,
    show_password: Annotated[
        bool, typer.Option("--show-password", help="Print the rescue's root password.")
    ] = False,
) -> None:
    """Put an instance in rescue mode and print how to log in to it.

    The instance stays in rescue until `cloudrescue unrescue`; it is journalled, so
    `cloudrescue status` lists it. If anything fails before the login is verified, the
    instance is unrescued again.
    """
    from cloudrescue.journal import Journal
    from cloudrescue.keys import load_public_keys
    from cloudrescue.rescue import RescueWorkflow

    keys = [k for path in key or [] for k in load_public_keys(path)]
    settings = options.settings()
    backend = state(ctx).cloud()
    server = backend.find_server(instance)
    with RichEvents() as events:
        login = RescueWorkflow(backend, Journal(), events, settings).hold(server, keys=keys)
    verified = "verified against the console log" if login.verified else "trusted on first use"
    stdout.print(f"[bold]{safe(server.name)}[/] is in rescue (run {login.run_id}).")
    stdout.print(f"  ssh -o UserKnownHostsFile={login.known_hosts} {login.user}@{login.address}")
    stdout.print(f"  host key {login.fingerprint} ({verified})")
    if show_password:
        stdout.print(f"  root password: {login.password}", soft_wrap=True)
    elif not keys:
        stdout.print("  root password hidden: pass --show-password, or --key to log in by key")
    stdout.print(f"  leave rescue with: cloudrescue unrescue {safe(server.name)}")


def unrescue(ctx: typer.Context, instance: Instance, timeout: Timeout = 600) -> None:
    """Take an instance out of rescue mode and wait until it is ACTIVE."""
    from cloudrescue.journal import Journal
    from cloudrescue.rescue import RescueSettings, RescueWorkflow

    backend = state(ctx).cloud()
    server = backend.find_server(instance)
    with RichEvents() as events:
        workflow = RescueWorkflow(backend, Journal(), events, RescueSettings(state_timeout=timeout))
        final = workflow.unrescue(server)
    stdout.print(f"[bold]{safe(server.name)}[/] left rescue: {final.status}")


def status(
    ctx: typer.Context,
    instance: Annotated[
        str | None, typer.Argument(help="Show this instance's state too.", show_default=False)
    ] = None,
    show_all: Annotated[
        bool, typer.Option("--all", help="Include finished rescues from the journal.")
    ] = False,
) -> None:
    """Show rescues in flight or left behind: the local journal, and what the cloud shows in
    rescue or marked by cloudrescue (a run on another machine, or a lost journal)."""
    from cloudrescue.errors import CloudRescueError
    from cloudrescue.journal import Journal
    from cloudrescue.marks import read_mark
    from cloudrescue.rescue import rescues_in_cloud

    journal = Journal()
    entries = journal.entries(include_restored=show_all)
    if instance is not None:
        server = state(ctx).cloud().find_server(instance)
        task = f" ({server.task_state})" if server.task_state else ""
        mark = read_mark(server)
        stdout.print(f"[bold]{safe(server.name)}[/] {server.id}: {server.status}{task}")
        if mark:
            since = mark.since or "?"
            stdout.print(f"  marked in rescue by cloudrescue run {mark.run_id} since {since}")
        entries = [e for e in entries if e.server_id == server.id]
    _journal_table(entries)
    if instance is not None:
        return
    try:
        in_cloud = rescues_in_cloud(state(ctx).cloud())
    except CloudRescueError as error:
        stderr.print(f"cloud not checked: {safe(error.message)}")
        return
    known = {entry.server_id for entry in journal.entries()}
    unknown = [found for found in in_cloud if found.server.id not in known]
    if not unknown:
        return
    table = Table("instance", "id", "state", "cloudrescue run", "since", box=None)
    for found in unknown:
        server = found.server
        task = f"/{server.task_state}" if server.task_state else ""
        run = found.mark.run_id if found.mark else "-"
        since = (found.mark.since or "?") if found.mark else "-"
        table.add_row(safe(server.name), server.id, f"{server.status}{task}", run, since)
    stdout.print("In rescue or marked in the cloud, not in this journal:")
    stdout.print(table)
    stdout.print("restore one with `cloudrescue resume INSTANCE` (or `cloudrescue unrescue`)")


def _journal_table(entries: list[JournalEntry]) -> None:
    if not entries:
        stdout.print("No rescue in flight or left behind in the journal.")
        return
    table = Table("run", "instance", "cloud", "state", "started", "by", "note", box=None)
    for entry in entries:
        alive = "running" if entry.process_alive else "dead"
        by = f"{entry.command} (pid {entry.pid}, {alive})"
        table.add_row(
            entry.run_id,
            safe(entry.server_name),
            safe(entry.cloud),
            entry.state,
            entry.started_at,
            by,
            safe(entry.note),
        )
    stdout.print(table)
    stranded = [e for e in entries if e.state not in ("restored", "held") and not e.process_alive]
    if stranded:
        stdout.print(f"{len(stranded)} left in rescue by a run that died: `cloudrescue resume`")


def resume(
    ctx: typer.Context,
    instance: Annotated[
        str | None, typer.Argument(help="Only this instance (name or ID).", show_default=False)
    ] = None,
    include_held: Annotated[
        bool, typer.Option("--all", help="Also unrescue instances kept in rescue on purpose.")
    ] = False,
    timeout: Timeout = 600,
) -> None:
    """Restore instances that a crashed or killed run left in rescue.

    Without a journal entry (the run was on another machine, or the journal is gone), an
    instance named here is restored when it carries cloudrescue's mark.
    """
    from cloudrescue.cloud.openstack import open_recorded_cloud
    from cloudrescue.journal import Journal
    from cloudrescue.rescue import RescueSettings, RescueWorkflow, stranded

    journal = Journal()
    settings = RescueSettings(state_timeout=timeout)
    todo = stranded(journal, instance=instance, include_held=include_held)
    if not todo and instance is not None:
        backend = state(ctx).cloud()
        server = backend.find_server(instance)
        with RichEvents() as events:
            done = RescueWorkflow(backend, journal, events, settings).resume_marked(server)
        stdout.print(safe(done))
        return
    if not todo:
        stdout.print("Nothing to resume.")
        return
    with RichEvents() as events:
        for entry in todo:
            backend = open_recorded_cloud(entry.cloud)
            stdout.print(safe(RescueWorkflow(backend, journal, events, settings).resume(entry)))
