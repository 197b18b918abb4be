"""`rescue`, `unrescue`, `status`, `resume`: rescue mode itself, journalled."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cloudrescue.cli import options
from cloudrescue.cli.render import RichEvents, stdout


def rescue(
    ctx: typer.Context,
    instance: options.Instance,
    key: Annotated[
        list[Path] | None,
        typer.Option("--key", help="Also authorise this public key for root on the rescue system."),
    ] = None,
    show_password: Annotated[
        bool, typer.Option("--show-password", help="Print the rescue's root password.")
    ] = False,
    image: options.Image = None,
    address: options.Address = None,
    jump: options.Jump = None,
    jump_key: options.JumpKey = None,
    jump_fingerprint: options.JumpFingerprint = None,
    trust_host_key: options.TrustHostKey = False,
    timeout: options.Timeout = 600,
    ssh_timeout: options.SshTimeout = 300,
) -> None:
    """Put an instance in rescue mode and print how to log in to it.

    The instance stays in rescue until `cloudrescue unrescue`; it is journalled, so
    `cloudrescue status` lists it. If anything fails before the login is verified, the
    instance is unrescued again.
    """
    from cloudrescue.journal import Journal
    from cloudrescue.keys import load_public_keys
    from cloudrescue.rescue import RescueWorkflow
    from cloudrescue.rescue_access import authorize_rescue_keys, remember_host_key

    keys = [k for path in key or [] for k in load_public_keys(path)]
    settings = options.rescue_settings(
        image=image,
        address=address,
        jump=jump,
        jump_key=jump_key,
        jump_fingerprint=jump_fingerprint,
        trust_host_key=trust_host_key,
        timeout=timeout,
        ssh_timeout=ssh_timeout,
    )
    backend = options.state(ctx).cloud()
    server = backend.find_server(instance)
    journal = Journal()
    with RichEvents() as events:
        workflow = RescueWorkflow(backend, journal, events, settings)
        with workflow.session(server, command="rescue", hold=True) as rescued:
            if keys:
                authorize_rescue_keys(rescued.host, keys)
            known_hosts = remember_host_key(journal.path.parent, rescued.address, rescued.host)
    verified = "verified against the console log" if rescued.announced else "trusted on first use"
    stdout.print(f"[bold]{server.name}[/] is in rescue (run {rescued.run_id}).")
    stdout.print(f"  ssh -o UserKnownHostsFile={known_hosts} root@{rescued.address}")
    stdout.print(f"  host key {rescued.host.host_key_fingerprint} ({verified})")
    if show_password:
        stdout.print(f"  root password: {rescued.password}", soft_wrap=True)
    elif not keys:
        stdout.print("  root password hidden: pass --show-password, or --key to log in by key")
    stdout.print(f"  leave rescue with: cloudrescue unrescue {server.name}")


def unrescue(
    ctx: typer.Context,
    instance: options.Instance,
    timeout: options.Timeout = 600,
) -> None:
    """Take an instance out of rescue mode and wait until it is ACTIVE."""
    from cloudrescue.errors import WrongStateError
    from cloudrescue.journal import Journal
    from cloudrescue.rescue import RescueSettings, RescueWorkflow

    backend = options.state(ctx).cloud()
    server = backend.find_server(instance)
    if server.status != "RESCUE" and server.task_state not in ("rescuing", "unrescuing"):
        raise WrongStateError(f"instance {server.name} is not in rescue (status {server.status})")
    journal = Journal()
    open_runs = [e for e in journal.entries() if e.server_id == server.id]
    with RichEvents() as events:
        workflow = RescueWorkflow(backend, journal, events, RescueSettings(state_timeout=timeout))
        final = workflow.leave(server, open_runs[0].run_id if open_runs else None)
    for entry in open_runs[1:]:
        journal.update(entry.run_id, "restored", note="closed by unrescue")
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

    journal = Journal()
    entries = journal.entries(include_restored=show_all)
    if instance is not None:
        backend = options.state(ctx).cloud()
        server = backend.find_server(instance)
        task = f" ({server.task_state})" if server.task_state else ""
        mark = server.metadata.get("cloudrescue:run")
        stdout.print(f"[bold]{server.name}[/] {server.id}: {server.status}{task}")
        if mark:
            since = server.metadata.get("cloudrescue:since", "?")
            stdout.print(f"  marked in rescue by cloudrescue run {mark} since {since}")
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
    timeout: options.Timeout = 600,
) -> None:
    """Restore instances that a crashed or killed run left in rescue."""
    from cloudrescue.cloud.openstack import OpenStackCloud
    from cloudrescue.journal import Journal
    from cloudrescue.rescue import RescueSettings, RescueWorkflow

    journal = Journal()
    todo = [
        e
        for e in journal.entries()
        if not e.process_alive
        and (include_held or e.state != "held")
        and instance in (None, e.server_name, e.server_id)
    ]
    if not todo:
        stdout.print("Nothing to resume.")
        return
    with RichEvents() as events:
        for entry in todo:
            backend = OpenStackCloud(None if entry.cloud == "envvars" else entry.cloud)
            workflow = RescueWorkflow(
                backend, journal, events, RescueSettings(state_timeout=timeout)
            )
            stdout.print(workflow.resume(entry))
