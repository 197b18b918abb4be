"""`run` (any playbooks, in one rescue) and the named fixes `fix-ssh-keys` and `reset-password`.

The named fixes are plain commands that run their shipped playbook; their options and help
restate the playbook's parameters, and ``tests/playbook/test_docs.py`` fails when the two
drift apart. Every one takes the repair and rescue option groups whole (``cli/options.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import typer

from cloudrescue.cli.environment import Environment
from cloudrescue.cli.options import (
    Instance,
    ParamOptions,
    PasswordOptions,
    PlaybookRefs,
    RepairOptions,
    RescueOptions,
    SshKeysOptions,
    environment,
    state,
    takes_options,
)
from cloudrescue.cli.output import OutputOptions
from cloudrescue.cli.prompts import confirm_repair, read_secret, root_chooser
from cloudrescue.cli.render import RichEvents
from cloudrescue.cli.reports import render_run, step_label

if TYPE_CHECKING:
    from cloudrescue.playbook.engine import StepReport
    from cloudrescue.playbook.params import Resolved
    from cloudrescue.playbook.paramtypes import Secret
    from cloudrescue.playbook.runner import RunReport
    from cloudrescue.playbook.schema import ParameterSpec, Playbook

SecretSource = Callable[[str, "ParameterSpec"], "Secret"]

HELP = {
    "fix-ssh-keys": (
        "Give SSH access back: authorise your public key for the guest's user.\n\n"
        "Also repairs what makes sshd ignore a key (StrictModes): the owner and modes of the home "
        "directory, ~/.ssh (0700) and authorized_keys (0600). Running it twice changes nothing "
        "the second time.\n\n"
        "Runs the playbook fix-ssh-keys (see `cloudrescue playbooks show fix-ssh-keys`)."
    ),
    "reset-password": (
        "Set a guest account's password (to log in on the console, or over SSH).\n\n"
        "The password is asked for twice on the terminal, hidden, or read from stdin with "
        "--password-stdin: never from the command line. It is hashed here the way the guest "
        "hashes (yescrypt or SHA-512) and only the hash is written to /etc/shadow, which no diff "
        "shows. The account is unlocked and its password no longer expired. Cloud images refuse "
        "password logins over SSH: --ssh also lets this account log in with it (a `Match User` "
        "block for the guest's sshd, checked with its own `sshd -T`).\n\n"
        "Runs the playbook reset-password (see `cloudrescue playbooks show reset-password`)."
    ),
}


def execute(
    ctx: typer.Context,
    instance: str,
    playbooks: Sequence[Playbook],
    given: Mapping[str, Sequence[str]],
    secret: SecretSource,
    repair: RepairOptions,
    rescue: RescueOptions,
    output: OutputOptions,
) -> None:
    """Check every value of every playbook, then rescue the instance once, run the playbooks
    in order and print the report; a playbook that failed gives its error's exit status."""
    from cloudrescue.errors import InvalidInputError
    from cloudrescue.journal import Journal
    from cloudrescue.phase import DiskChoice
    from cloudrescue.playbook.params import route
    from cloudrescue.playbook.runner import run_playbooks
    from cloudrescue.rescue import RescueWorkflow

    if repair.disk is not None and not repair.disk.strip():
        raise InvalidInputError("--disk is empty: a device, UUID=, LABEL= or LV name")
    env = environment(ctx)
    output.chosen()
    shares = route(playbooks, given)
    asked = shared_secrets(secret)
    work = [
        (playbook, _checked(playbook, share, asked, len(playbooks) > 1))
        for playbook, share in zip(playbooks, shares, strict=True)
    ]
    settings = rescue.settings()
    backend = state(ctx).cloud()
    server = backend.find_server(instance)
    confirm_repair(env, f"{server.name} ({server.id})", yes=repair.yes, dry_run=repair.dry_run)
    with RichEvents(env) as events:
        workflow = RescueWorkflow(backend, Journal(), events, settings)

        def on_step(report: StepReport) -> None:
            events.note(f"{step_label(report, repair.dry_run)}: {report.step.name}")

        report = run_playbooks(
            workflow,
            server,
            work,
            dry_run=repair.dry_run,
            disk=DiskChoice(repair.disk, ask=root_chooser(env, events, yes=repair.yes)),
            on_step=on_step,
        )
    finish(env, output, report)


def _checked(
    playbook: Playbook, given: Mapping[str, Sequence[str]], secret: SecretSource, several: bool
) -> dict[str, Resolved]:
    """``playbook``'s values, every step rendered with them; an error names the playbook when
    there are several."""
    from cloudrescue.errors import InvalidInputError
    from cloudrescue.playbook.engine import check_values
    from cloudrescue.playbook.params import resolve

    try:
        values = resolve(playbook, given, secret)
        check_values(playbook, values)
    except InvalidInputError as error:
        if not several:
            raise
        raise InvalidInputError(f"{playbook.name}: {error.message}", hint=error.hint) from None
    return values


def shared_secrets(secret: SecretSource) -> SecretSource:
    """``secret``, asked once per name: every playbook that declares it gets the same one."""
    asked: dict[str, Secret] = {}

    def once(name: str, spec: ParameterSpec) -> Secret:
        if name not in asked:
            asked[name] = secret(name, spec)
        return asked[name]

    return once


def finish(env: Environment, output: OutputOptions, report: RunReport) -> None:
    """Print the report; then, if a playbook failed, raise its error (one line, its exit
    status), naming the playbook and what was kept when there were several."""
    render_run(env, output, report)
    failed = report.failed
    if failed is None or failed.error is None:
        return
    error = failed.error
    if len(report.runs) > 1:
        kept = [run.playbook.name for run in report.runs if run.status == "changed"]
        not_run = [run.playbook.name for run in report.runs if run.status == "not-run"]
        error.message = f"{failed.playbook.name}: {error.message}"
        told = [
            f"kept what {', '.join(kept)} changed" if kept and not report.dry_run else "",
            f"not run: {', '.join(not_run)}" if not_run else "",
        ]
        error.hint = error.hint or "; ".join(part for part in told if part) or None
    raise error


def secret_source(env: Environment, flag: str, from_stdin: bool) -> SecretSource:
    """Where a command's secret parameters come from: the terminal, or stdin with ``flag``."""
    def secret(name: str, spec: ParameterSpec) -> Secret:
        return read_secret(env, name, spec.description, from_stdin=from_stdin, flag=flag)

    return secret


@takes_options
def run(
    ctx: typer.Context,
    instance: Instance,
    playbooks: PlaybookRefs,
    repair: RepairOptions,
    rescue: RescueOptions,
    output: OutputOptions,
    params: ParamOptions,
) -> None:
    """Run playbooks on an instance: rescue, mount, run the steps, unmount, unrescue.

    Several playbooks run in one rescue, in the order given, each with the disk mounted as it
    asks (a mount of its own). The first one that fails stops the run: its own changes are
    restored, what the earlier ones changed is kept, the rest are not run; the exit status is
    its error's. The same playbook twice is refused.

    --param NAME=VALUE goes to every playbook that declares NAME (one that none declares is
    refused); --param PLAYBOOK:NAME=VALUE to that playbook only (its name, as `playbooks
    list` shows it), in place of NAME=VALUE there. A secret is asked once, for every
    playbook that declares it. Every value is checked before the cloud is asked anything.

    With --dry-run the disk is mounted read-only and the diffs and commands are shown (each
    playbook sees the disk as it is: not what the ones before it would change).
    """
    from cloudrescue.playbook import catalog

    loaded = [catalog.find(playbook) for playbook in playbooks]
    secret = secret_source(environment(ctx), "--secret-stdin", params.secret_stdin)
    execute(ctx, instance, loaded, params.given(), secret, repair, rescue, output)


def _shipped(name: str) -> Playbook:
    from cloudrescue.playbook import catalog

    return catalog.load_shipped(name)


@takes_options
def fix_ssh_keys(
    ctx: typer.Context,
    instance: Instance,
    repair: RepairOptions,
    rescue: RescueOptions,
    output: OutputOptions,
    keys: SshKeysOptions,
) -> None:
    playbook = _shipped("fix-ssh-keys")
    secret = secret_source(environment(ctx), "--secret-stdin", False)
    execute(ctx, instance, [playbook], keys.given(), secret, repair, rescue, output)


@takes_options
def reset_password(
    ctx: typer.Context,
    instance: Instance,
    repair: RepairOptions,
    rescue: RescueOptions,
    output: OutputOptions,
    password: PasswordOptions,
) -> None:
    playbook = _shipped("reset-password")
    secret = secret_source(environment(ctx), "--password-stdin", password.password_stdin)
    execute(ctx, instance, [playbook], password.given(), secret, repair, rescue, output)


def register(root: typer.Typer) -> None:
    """Add `run`, `fix-ssh-keys` and `reset-password` to the root app."""
    root.command("run")(run)
    root.command("fix-ssh-keys", help=HELP["fix-ssh-keys"])(fix_ssh_keys)
    root.command("reset-password", help=HELP["reset-password"])(reset_password)
