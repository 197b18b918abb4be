"""`cloudrescue diagnose`: why an instance is unreachable, with evidence, and which fix to run.

The CLI's part: the options (``DiagnoseOptions``), the keys and playbook files read before the
cloud is asked, and the report: the findings table for people, the ``DIAGNOSIS`` record for
scripts. The diagnosis itself is ``cloudrescue.diagnose.engine.diagnose``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from cloudrescue.cli.options import DiagnoseOptions, Instance, environment, state, takes_options
from cloudrescue.cli.output import OutputOptions, show_list, show_record
from cloudrescue.cli.records import DIAGNOSIS
from cloudrescue.cli.render import safe

if TYPE_CHECKING:
    from cloudrescue.cli.environment import Environment
    from cloudrescue.diagnose.catalog import Catalog
    from cloudrescue.diagnose.engine import Diagnosis
    from cloudrescue.diagnose.findings import Finding
    from cloudrescue.diagnose.probe import PortProbe
    from cloudrescue.keys import PublicKey

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

Findings are ranked by confidence (certain: the API says it; high, medium, low), then by the
strength of their evidence; each comes with its evidence (console lines and their numbers,
probe results) and the command that cures it. A healthy instance gets "no problem found" and
no suggestion. Exit status 0 whether a problem is found or not (read `healthy`, `findings` with
-f json); the README's codes when the diagnosis itself fails.
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
    output: OutputOptions,
) -> None:
    """The command (its help is ``HELP``): inputs checked, the diagnosis, the report."""
    from cloudrescue.diagnose import engine
    from cloudrescue.diagnose.probe import Prober
    from cloudrescue.errors import InvalidInputError

    output.chosen()  # a bad -f or -c, key, user or playbook fails before the cloud is asked
    output.selected(DIAGNOSIS.names)
    if options.address is not None and not options.address.strip():
        raise InvalidInputError("--address is empty")
    user = _user(options.user)
    keys = _keys(options.key)
    catalog = _catalog(options.playbook)
    env = environment(ctx)
    backend = state(ctx).cloud()
    result = engine.diagnose(
        backend,
        instance,
        catalog=catalog,
        probe=Prober(connect_timeout=options.connect_timeout),
        address=options.address,
        ports=tuple(dict.fromkeys(options.port or engine.DEFAULT_PORTS)),
        user=user,
        keys=keys,
        keys_given=bool(options.key),
    )
    show_record(env, output, diagnosis_record(result), for_people=lambda: _for_people(env, result))


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
