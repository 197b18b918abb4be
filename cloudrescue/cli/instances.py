"""`rescue`, `unrescue`, `status`, `resume`: rescue mode itself, journalled."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from cloudrescue.cli.completion import instance_names
from cloudrescue.cli.options import (
    Instance,
    RescueOptions,
    Timeout,
    Yes,
    environment,
    state,
    takes_options,
)
from cloudrescue.cli.output import OutputOptions, show_list
from cloudrescue.cli.prompts import confirm
from cloudrescue.cli.records import STATUS
from cloudrescue.cli.render import RichEvents, safe

if TYPE_CHECKING:
    from cloudrescue.cli.environment import Environment
    from cloudrescue.cloud.base import ServerInfo
    from cloudrescue.journal import JournalEntry
    from cloudrescue.rescue import CloudRescue



@takes_options
def rescue(
    ctx: typer.Context,
    instance: Instance,
    options: RescueOptions,
    key: Annotated[
        list[Path] | None,
        typer.Option(
            "--key",
            metavar="FILE",
            help="Also authorise this public key for root on the rescue system.",
        ),
    ] = None,
    show_password: Annotated[
        bool, typer.Option("--show-password", help="Print the rescue's root password.")
    ] = False,
    yes: Yes = False,
) -> None:
    """Put an instance in rescue mode and print how to log in to it.

    The instance reboots into the rescue system and stays there until `cloudrescue unrescue`;
    it is journalled, so `cloudrescue status` lists it. If anything fails before the login is
    verified, the instance is unrescued again.
    """
    from cloudrescue.journal import Journal
    from cloudrescue.keys import load_public_keys
    from cloudrescue.rescue import RescueWorkflow

    env = environment(ctx)
    keys = [k for path in key or [] for k in load_public_keys(path)]
    settings = options.settings()
    backend = state(ctx).cloud()
    server = backend.find_server(instance)
    confirm(
        env,
        f"This reboots {safe(server.name)} into rescue mode and leaves it there. Continue?",
        yes=yes,
    )
    with RichEvents(env) as events:
        login = RescueWorkflow(backend, Journal(), events, settings).hold(server, keys=keys)
    verified = "verified against the console log" if login.verified else "trusted on first use"
    out = env.out
    out.print(f"[bold]{safe(server.name)}[/] is in rescue (run {login.run_id}).")
    out.print(f"  ssh -o UserKnownHostsFile={login.known_hosts} {login.user}@{login.address}")
    out.print(f"  host key {login.fingerprint} ({verified})")
    if show_password:
        out.print(f"  root password: {login.password}", soft_wrap=True)
    elif not keys:
        out.print("  root password hidden: pass --show-password, or --key to log in by key")
    out.print(f"  leave rescue with: cloudrescue unrescue {safe(server.name)}")


def unrescue(
    ctx: typer.Context, instance: Instance, timeout: Timeout = 600, yes: Yes = False
) -> None:
    """Take an instance out of rescue mode (it reboots) and wait until it is ACTIVE."""
    from cloudrescue.journal import Journal
    from cloudrescue.rescue import RescueSettings, RescueWorkflow
    from cloudrescue.shell.session import end_held_shell

    env = environment(ctx)
    backend = state(ctx).cloud()
    server = backend.find_server(instance)
    confirm(env, f"This reboots {safe(server.name)} out of rescue mode. Continue?", yes=yes)
    with RichEvents(env) as events:
        workflow = RescueWorkflow(backend, Journal(), events, RescueSettings(state_timeout=timeout))
        ended = end_held_shell(workflow, server)  # a shell left running: end it, unmount
        if ended is not None:
            events.note(ended)
        final = workflow.unrescue(server)
    env.out.print(f"[bold]{safe(server.name)}[/] left rescue: {final.status}")


@takes_options
def status(
    ctx: typer.Context,
    output: OutputOptions,
    instance: Annotated[
        str | None,
        typer.Argument(
            help="Show this instance's state too.",
            show_default=False,
            autocompletion=instance_names,
        ),
    ] = None,
    finished: Annotated[
        bool, typer.Option("--finished", help="Include finished rescues from the journal.")
    ] = False,
) -> None:
    """Show rescues in flight or left behind: the local journal, and what the cloud shows in
    rescue or marked by cloudrescue (a run on another machine, or a lost journal)."""
    from cloudrescue.errors import CloudRescueError
    from cloudrescue.journal import Journal
    from cloudrescue.rescue import cloud_rescue, rescues_in_cloud

    env = environment(ctx)
    output.chosen()  # a bad -f fails before the cloud is asked
    output.selected(STATUS.names)
    journal = Journal()
    entries = journal.entries(include_restored=finished)
    in_cloud: list[CloudRescue] = []
    cloud = ""
    if instance is not None:
        backend = state(ctx).cloud()
        cloud = backend.cloud_name
        server = backend.find_server(instance)
        entries = [e for e in entries if e.server_id == server.id]
        found = cloud_rescue(server)
        if output.for_people:
            _instance_line(env, server, found)
        elif found is not None and not entries:
            in_cloud = [found]
    else:
        try:
            backend = state(ctx).cloud()
            cloud = backend.cloud_name
            in_cloud = rescues_in_cloud(backend)
        except CloudRescueError as error:
            env.err.print(f"cloud not checked: {safe(error.message)}")
    known = {entry.server_id for entry in journal.entries()}
    unknown = [found for found in in_cloud if found.server.id not in known]
    rows = [_journal_row(entry) for entry in entries]
    rows += [_cloud_row(found, cloud) for found in unknown]
    if output.for_people:
        _for_people(env, entries, unknown)
    else:
        show_list(env, output, STATUS.names, rows)


def _journal_row(entry: JournalEntry) -> dict[str, Any]:
    return {
        "run": entry.run_id,
        "instance": entry.server_name,
        "id": entry.server_id,
        "cloud": entry.cloud,
        "state": entry.state,
        "started": entry.started_at,
        "command": entry.command,
        "pid": entry.pid,
        "alive": entry.process_alive,
        "note": entry.note,
        "source": "journal",
    }


def _cloud_row(found: CloudRescue, cloud: str) -> dict[str, Any]:
    server = found.server
    return {
        "run": found.mark.run_id if found.mark else None,
        "instance": server.name,
        "id": server.id,
        "cloud": cloud,
        "state": server.status + (f"/{server.task_state}" if server.task_state else ""),
        "started": found.mark.since if found.mark else None,
        "command": None,
        "pid": None,
        "alive": None,
        "note": "",
        "source": "cloud",
    }


def _instance_line(env: Environment, server: ServerInfo, found: CloudRescue | None) -> None:
    task = f" ({server.task_state})" if server.task_state else ""
    env.out.print(f"[bold]{safe(server.name)}[/] {server.id}: {server.status}{task}")
    if found is not None and found.mark:
        since = found.mark.since or "?"
        env.out.print(f"  marked in rescue by cloudrescue run {found.mark.run_id} since {since}")


def _for_people(env: Environment, entries: list[JournalEntry], unknown: list[CloudRescue]) -> None:
    out = env.out
    if not entries:
        out.print("No rescue in flight or left behind in the journal.")
    else:
        table = Table("run", "instance", "id", "cloud", "state", "started", "by", "note", box=None)
        for entry in entries:
            alive = "running" if entry.process_alive else "dead"
            table.add_row(
                entry.run_id,
                safe(entry.server_name),
                entry.server_id,
                safe(entry.cloud),
                entry.state,
                entry.started_at,
                f"{entry.command} (pid {entry.pid}, {alive})",
                safe(entry.note),
            )
        out.print(table)
        died = [e for e in entries if e.state not in ("restored", "held") and not e.process_alive]
        if died:
            out.print(f"{len(died)} left in rescue by a run that died: `cloudrescue resume`")
    if not unknown:
        return
    table = Table("instance", "id", "state", "cloudrescue run", "since", box=None)
    for found in unknown:
        row = _cloud_row(found, "")
        table.add_row(
            safe(row["instance"]), row["id"], row["state"], row["run"] or "-", row["started"] or "-"
        )
    out.print("In rescue or marked in the cloud, not in this journal:")
    out.print(table)
    out.print("restore one with `cloudrescue resume INSTANCE` (or `cloudrescue unrescue`)")


def resume(
    ctx: typer.Context,
    instance: Annotated[
        str | None,
        typer.Argument(
            help="Only this instance (name or ID).",
            show_default=False,
            autocompletion=instance_names,
        ),
    ] = None,
    include_held: Annotated[
        bool, typer.Option("--held", help="Also unrescue instances kept in rescue on purpose.")
    ] = False,
    timeout: Timeout = 600,
    yes: Yes = False,
) -> None:
    """Restore instances that a crashed or killed run left in rescue (each reboots).

    Without a journal entry (the run was on another machine, or the journal is gone), an
    instance named here is restored when it carries cloudrescue's mark.
    """
    from cloudrescue.cloud.recorded import open_recorded_cloud
    from cloudrescue.journal import Journal
    from cloudrescue.rescue import RescueSettings, RescueWorkflow, stranded

    env = environment(ctx)
    journal = Journal()
    settings = RescueSettings(state_timeout=timeout)
    todo = stranded(journal, instance=instance, include_held=include_held)
    if not todo and instance is not None:
        backend = state(ctx).cloud()
        server = backend.find_server(instance)
        confirm(env, f"This reboots {safe(server.name)} out of rescue mode. Continue?", yes=yes)
        with RichEvents(env) as events:
            done = RescueWorkflow(backend, journal, events, settings).resume_marked(server)
        env.out.print(safe(done))
        return
    if not todo:
        env.out.print("Nothing to resume.")
        return
    names = ", ".join(safe(entry.server_name) for entry in todo)
    confirm(env, f"This reboots {names} out of rescue mode. Continue?", yes=yes)
    connection = state(ctx).connection()
    with RichEvents(env) as events:
        for entry in todo:
            backend = open_recorded_cloud(entry.cloud, connection)
            env.out.print(safe(RescueWorkflow(backend, journal, events, settings).resume(entry)))
