"""`rescue`, `unrescue`, `status`, `resume`: rescue mode itself, journalled."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cloudrescue.cli.options import Instance, RescueOptions, Timeout, state, takes_options
from cloudrescue.cli.render import RichEvents, stdout


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
    stdout.print(f"[bold]{server.name}[/] is in rescue (run {login.run_id}).")
    stdout.print(f"  ssh -o UserKnownHostsFile={login.known_hosts} {login.user}@{login.address}")
    stdout.print(f"  host key {login.fingerprint} ({verified})")
    if show_password:
        stdout.print(f"  root password: {login.password}", soft_wrap=True)
    elif not keys:
        stdout.print("  root password hidden: pass --show-password, or --key to log in by key")
    stdout.print(f"  leave rescue with: cloudrescue unrescue {server.name}")


def unrescue(ctx: typer.Context, instance: Instance, timeout: Timeout = 600) -> None:
    """Take an instance out of rescue mode and wait until it is ACTIVE."""
    from cloudrescue.journal import Journal
    from cloudrescue.rescue import RescueSettings, RescueWorkflow

    backend = state(ctx).cloud()
    server = backend.find_server(instance)
    with RichEvents() as events:
        workflow = RescueWorkflow(backend, Journal(), events, RescueSettings(state_timeout=timeout))
        final = workflow.unrescue(server)
    stdout.print(f"[bold]{server.name}[/] left rescue: {final.status}")


def status(
    ctx: typer.Context,
    instance: Annotated[
        str | None, typer.Argument(help="Show this instance's state too.", show_default=False)
    ] = None,
    show_all: Annotated[
        bool, typer.Option("--all", help="Include finished rescues from the journal.")
    ] = False,
) -> None:
    """Show rescues in flight or left behind (local journal, and marks in the cloud)."""
    from rich.table import Table

    from cloudrescue.journal import Journal
    from cloudrescue.marks import read_mark

    journal = Journal()
    entries = journal.entries(include_restored=show_all)
    if instance is not None:
        backend = state(ctx).cloud()
        server = backend.find_server(instance)
        task = f" ({server.task_state})" if server.task_state else ""
        mark = read_mark(server)
        stdout.print(f"[bold]{server.name}[/] {server.id}: {server.status}{task}")
        if mark:
            since = mark.since or "?"
            stdout.print(f"  marked in rescue by cloudrescue run {mark.run_id} since {since}")
        entries = [e for e in entries if e.server_id == server.id]
    if not entries:
        stdout.print("No rescue in flight or left behind in the journal.")
        return
    table = Table("run", "instance", "cloud", "state", "started", "by", "note", box=None)
    for entry in entries:
        alive = "running" if entry.process_alive else "dead"
        by = f"{entry.command} (pid {entry.pid}, {alive})"
        table.add_row(
            entry.run_id,
            entry.server_name,
            entry.cloud,
            entry.state,
            entry.started_at,
            by,
            entry.note,
        )
    stdout.print(table)
    stranded = [e for e in entries if e.state not in ("restored", "held") and not e.process_alive]
    if stranded:
        stdout.print(f"{len(stranded)} left in rescue by a run that died: `cloudrescue resume`")


def resume(
    instance: Annotated[
        str | None, typer.Argument(help="Only this instance (name or ID).", show_default=False)
    ] = None,
    include_held: Annotated[
        bool, typer.Option("--all", help="Also unrescue instances kept in rescue on purpose.")
    ] = False,
    timeout: Timeout = 600,
) -> None:
    """Restore instances that a crashed or killed run left in rescue."""
    from cloudrescue.cloud.openstack import open_recorded_cloud
    from cloudrescue.journal import Journal
    from cloudrescue.rescue import RescueSettings, RescueWorkflow, stranded

    journal = Journal()
    todo = stranded(journal, instance=instance, include_held=include_held)
    if not todo:
        stdout.print("Nothing to resume.")
        return
    settings = RescueSettings(state_timeout=timeout)
    with RichEvents() as events:
        for entry in todo:
            backend = open_recorded_cloud(entry.cloud)
            stdout.print(RescueWorkflow(backend, journal, events, settings).resume(entry))
