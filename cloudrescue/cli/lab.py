"""`cloudrescue lab ...`: a local test cloud with real instances (needs root)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from types import TracebackType
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from cloudrescue.cli.environment import Environment
from cloudrescue.cli.options import environment, takes_options
from cloudrescue.cli.output import OutputOptions, show_record
from cloudrescue.cli.records import LAB
from cloudrescue.cli.render import safe
from cloudrescue.lab.layout import default_state_dir
from cloudrescue.lab.model import DEFAULT_ANNOUNCE_DELAY, FAMILIES, VARIANTS
from cloudrescue.lab.scenarios import SCENARIOS

app = typer.Typer(
    help="A local OpenStack-like lab with real instances to rescue (needs root).",
    no_args_is_help=True,
)

StateDir = Annotated[
    Path,
    typer.Option(
        "--state-dir",
        envvar="CLOUDRESCUE_LAB_DIR",
        help="The lab's state directory.",
        default_factory=default_state_dir,
        show_default="/var/lib/cloudrescue/lab",
    ),
]


Tags = Annotated[
    list[str] | None,
    typer.Option("--tag", metavar="TAG", help="A nova tag of the instances made (repeatable)."),
]


def _choice(value: str | None, allowed: tuple[str, ...], option: str) -> None:
    if value is not None and value not in allowed:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(allowed)}", param_hint=option)


class _UpDisplay:
    """Rich rendering of ``lab up``: a line per stage, a bar for booted instances."""

    def __init__(self, env: Environment) -> None:
        self._quiet = env.quiet
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=env.err,
            transient=True,
        )
        self._task: TaskID | None = None

    def __enter__(self) -> _UpDisplay:
        if not self._quiet:
            self._progress.start()
        self._task = self._progress.add_task("preparing", total=None)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def step(self, message: str) -> None:
        if not self._quiet:
            self._progress.console.print(f"[bold]→[/] {message}")
        if self._task is not None:
            self._progress.update(self._task, description=message)

    def booted(self, done: int, total: int) -> None:
        if self._task is not None:
            self._progress.update(self._task, completed=done, total=total)


def _instances_table(instances: list[dict[str, Any]]) -> Table:
    table = Table(box=None, header_style="bold")
    for column in ("NAME", "ID", "ADDRESS", "VARIANT", "STATUS", "USER"):
        table.add_column(column, min_width=36 if column == "ID" else None)
    for view in instances:
        cells = (
            view.get("name"),
            view.get("id"),
            view.get("address"),
            f"{view.get('variant')}/{view.get('family', 'debian')}",
            view.get("status"),
            view.get("user"),
        )
        table.add_row(*(safe(str(cell)) for cell in cells))
    return table


@app.command()
def up(
    ctx: typer.Context,
    state_dir: StateDir,
    instances: Annotated[
        int, typer.Option("--instances", min=0, max=200, help="Instances to boot.")
    ] = 3,
    variant: Annotated[
        str, typer.Option("--variant", help=f"Disk layout: {', '.join(VARIANTS)}.")
    ] = "ext4",
    transition_delay: Annotated[
        float,
        typer.Option("--transition-delay", min=0, help="Seconds each nova state change takes."),
    ] = 1.0,
    announce_delay: Annotated[
        float,
        typer.Option(
            "--announce-delay",
            min=0,
            help="Seconds from a client first seeing RESCUE until the rescue prints its SSH host "
            "keys on the console.",
        ),
    ] = DEFAULT_ANNOUNCE_DELAY,
    tag: Tags = None,
) -> None:
    """Start a lab (needs root): images (cached), network, daemon, instances, clouds.yaml.

    Prints `export OS_CLOUD=lab` for the shell, and `export CLOUDRESCUE_OVH_CONFIG=...` for
    its OVH VPS API (`cloudrescue --provider ovh-vps ...`); the lab stays up until
    `cloudrescue lab down`. `--tag` tags every instance it boots.
    """
    from cloudrescue.cloud.server_fields import checked_tags
    from cloudrescue.lab import lifecycle

    _choice(variant, VARIANTS, "--variant")
    tags = checked_tags("--tag", tag or [])
    env = environment(ctx)
    with _UpDisplay(env) as display:
        result = lifecycle.up(
            state_dir,
            instances=instances,
            variant=variant,  # type: ignore[arg-type] # checked by _choice
            transition_delay=transition_delay,
            progress=display,
            announce_delay=announce_delay,
            tags=tags,
        )
    config = result.config
    env.err.print(
        f"[bold green]lab {config.lab_id} is up[/]: API http://127.0.0.1:{config.api_port}, "
        f"network {config.subnet}, clouds.yaml entry [bold]{config.cloud_name}[/] in "
        f"{result.clouds_yaml}",
    )
    if not env.quiet:
        env.err.print(_instances_table(result.instances))
    env.out.print(f"export OS_CLOUD={config.cloud_name}")
    env.out.print(f"export CLOUDRESCUE_OVH_CONFIG={result.ovh_conf}", soft_wrap=True)


@app.command()
def down(ctx: typer.Context, state_dir: StateDir) -> None:
    """Stop the lab and remove everything it made, even after a crash (needs root)."""
    from cloudrescue.lab import lifecycle

    lifecycle.down(state_dir)
    if not environment(ctx).quiet:
        environment(ctx).err.print(f"lab in {state_dir} is down; nothing of it is left")


@app.command()
@takes_options
def status(ctx: typer.Context, state_dir: StateDir, output: OutputOptions) -> None:
    """Show the lab and its instances."""
    from cloudrescue.lab import lifecycle

    env = environment(ctx)
    output.selected(LAB.names)
    found = lifecycle.status(state_dir)
    config = found.config
    summary = {
        "lab_id": config.lab_id,
        "api": f"http://127.0.0.1:{config.api_port}",
        "network": config.subnet,
        "cloud": config.cloud_name,
        "daemon_pid": found.daemon_pid,
        "daemon_answers": found.daemon_answers,
        "instances": found.instances,
    }

    def for_people() -> None:
        daemon = f"daemon pid {found.daemon_pid}" if found.daemon_pid else "daemon not running"
        answers = "" if found.daemon_answers else " (not answering: state from disk)"
        env.out.print(
            f"lab {config.lab_id}: API {summary['api']}, network {config.subnet}, {daemon}{answers}"
        )
        env.out.print(_instances_table(found.instances))

    show_record(env, output, summary, for_people=for_people)


@app.command()
@takes_options
def add(
    ctx: typer.Context,
    state_dir: StateDir,
    name: Annotated[str | None, typer.Option("--name", help="Instance name.")] = None,
    variant: Annotated[
        str | None, typer.Option("--variant", help=f"Disk layout: {', '.join(VARIANTS)}.")
    ] = None,
    family: Annotated[
        str, typer.Option("--family", help=f"Guest layout: {', '.join(FAMILIES)}.")
    ] = "debian",
    volume_backed: Annotated[
        bool, typer.Option("--volume-backed", help="Boot from a volume (its disk has a serial).")
    ] = False,
    private: Annotated[
        bool,
        typer.Option(
            "--private",
            help="On the private network, reachable only through the bastion (`lab bastion`).",
        ),
    ] = False,
    tag: Tags = None,
    metadata: Annotated[
        list[str] | None,
        typer.Option(
            "--metadata",
            metavar="KEY=VALUE",
            help="A nova metadata item of the instance (repeatable).",
        ),
    ] = None,
    *,
    output: OutputOptions,
) -> None:
    """Create and boot one more instance (through the lab daemon)."""
    from cloudrescue.cloud.server_fields import checked_tags, metadata_items
    from cloudrescue.lab import lifecycle

    _choice(variant, VARIANTS, "--variant")
    _choice(family, FAMILIES, "--family")
    body: dict[str, Any] = {
        "family": family,
        "volume_backed": volume_backed,
        "tags": list(checked_tags("--tag", tag or [])),
        "metadata": metadata_items("--metadata", metadata or []),
    }
    if private:
        body["network"] = "private"
    if name:
        body["name"] = name
    if variant:
        body["variant"] = variant
    view = lifecycle.admin(state_dir).add(body)
    env = environment(ctx)
    show_record(env, output, view, for_people=lambda: env.out.print(_instances_table([view])))


@app.command()
@takes_options
def bastion(ctx: typer.Context, state_dir: StateDir, output: OutputOptions) -> None:
    """Make (the first time) and show the lab's SSH bastion and its private network.

    Instances made with `lab add --private` are reachable only through it:
    `cloudrescue fix-ssh-keys NAME --jump root@ADDRESS --jump-key KEY --jump-fingerprint FP`.
    """
    from cloudrescue.lab import lifecycle

    info = lifecycle.admin(state_dir).bastion()
    env = environment(ctx)

    def for_people() -> None:
        env.out.print(
            f"bastion {info['user']}@{info['address']} (private network {info['private_subnet']} "
            f"at {info['private_address']})\nkey {info['key']}\n"
            f"host key {info['host_key_fingerprint']}\n"
            f"use: --jump {info['user']}@{info['address']} --jump-key {info['key']} "
            f"--jump-fingerprint {info['host_key_fingerprint']}",
            markup=False,
        )

    show_record(env, output, info, for_people=for_people)


_SCENARIO_HELP = "\n\n".join(f"{s.name}: {s.description}" for s in SCENARIOS.values())


@app.command(
    "break",
    help=f"Break an instance on purpose (it reboots broken).\n\nScenarios:\n\n{_SCENARIO_HELP}",
)
def break_(
    ctx: typer.Context,
    state_dir: StateDir,
    instance: Annotated[str, typer.Argument(help="Instance name or ID.", show_default=False)],
    scenario: Annotated[
        str, typer.Argument(help=f"One of: {', '.join(SCENARIOS)}.", show_default=False)
    ],
) -> None:
    from cloudrescue.lab import lifecycle
    from cloudrescue.lab.scenarios import get

    get(scenario)
    answer = lifecycle.admin(state_dir).break_instance(instance, scenario)
    environment(ctx).out.print(f"{instance}: {answer.get('detail', scenario)}", markup=False)


@app.command()
def faults(
    ctx: typer.Context,
    state_dir: StateDir,
    set_json: Annotated[
        str | None,
        typer.Option("--set", help='Merge faults, e.g. \'{"api_error": {"status": 503}}\'.'),
    ] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Remove every fault.")] = False,
) -> None:
    """Show, set or clear the API faults the lab daemon injects (for tests)."""
    from cloudrescue.errors import InvalidInputError
    from cloudrescue.lab import lifecycle

    client = lifecycle.admin(state_dir)
    if clear:
        current = client.faults("DELETE")
    elif set_json is not None:
        try:
            body = json.loads(set_json)
        except json.JSONDecodeError as error:
            raise InvalidInputError(f"--set: not JSON ({error})") from None
        current = client.faults("PUT", body)
    else:
        current = client.faults()
    environment(ctx).out.out(json.dumps(current, indent=1), highlight=False)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def ssh(
    ctx: typer.Context,
    state_dir: StateDir,
    instance: Annotated[str, typer.Argument(help="Instance name or ID.", show_default=False)],
) -> None:
    """Log in to an instance as its default user with the lab's key (`-- cmd` runs cmd)."""
    from cloudrescue.lab import lifecycle

    argv = lifecycle.ssh_argv(state_dir, instance, list(ctx.args))
    sys.stdout.flush()
    os.execvp(argv[0], argv)  # noqa: S606 - argv list, no shell
