"""Diagnostic actions: fsck on the unmounted disk, network and disk checks from the rescue
system, the guest's logs brought home. None of them changes the guest unless asked to
(``fsck`` with ``repair``, ``disk_benchmark`` with ``write``), and never in check mode."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field

from cloudrescue.disks.discovery import human_size
from cloudrescue.fixes.collect_logs import collect_logs
from cloudrescue.fixes.diagnostics import NetworkReport, disk_benchmark, network_diagnostics
from cloudrescue.fixes.disk_space import MIB
from cloudrescue.fixes.fsck import check_filesystem, repair_command
from cloudrescue.playbook.actions.base import (
    Action,
    ActionParams,
    CommandRecord,
    Outcome,
    StepFailedError,
)
from cloudrescue.playbook.fields import COUNT, FLAG, PATH, TEXT
from cloudrescue.playbook.target import Target


class FsckParams(ActionParams):
    device: Annotated[str, PATH] = Field(
        description="the filesystem's device on the rescue, e.g. '{{ facts.root_device }}'"
    )
    fstype: Annotated[str, TEXT] = Field(
        description="ext2/3/4, xfs or btrfs, e.g. '{{ facts.root_fstype }}'"
    )
    repair: Annotated[bool, FLAG] = Field(
        False, description="repair (e2fsck -p/-y, xfs_repair); never btrfs; not in check mode"
    )
    zero_log: Annotated[bool, FLAG] = Field(
        False, description="let xfs_repair zero a dirty log (-L: loses recent metadata)"
    )


def _fsck(target: Target, params: FsckParams, step: str) -> Outcome:
    repair = params.repair and not target.phase.dry_run
    report = check_filesystem(
        target.phase.host,
        params.device,
        params.fstype,
        repair=repair,
        zero_log=params.zero_log and repair,
    )
    commands = tuple(
        CommandRecord("rescue", argv, ran=True, exit_code=report.exit_code)
        for argv in report.commands
    )
    state = "repaired" if report.repaired else "clean" if report.clean else "has errors"
    text = report.output + (f"\n{report.advice}" if report.advice else "")
    would_repair = target.phase.dry_run and params.repair and not report.clean
    if would_repair:
        argv = tuple(repair_command(params.device, params.fstype))
        commands += (CommandRecord("rescue", argv, ran=False),)
    return Outcome(
        changed=report.repaired or would_repair,
        commands=commands,
        note=f"{report.device} ({report.fstype}) {state}",
        report=text.strip(),
    )


class NetworkDiagnosticsParams(ActionParams):
    count: Annotated[int, COUNT] = Field(3, description="pings sent to the default gateway")


def _network_lines(report: NetworkReport) -> list[str]:
    lines = [
        f"{nic.name} ({nic.state}): {', '.join(nic.addresses) or 'no address'}"
        for nic in report.interfaces
    ]
    lines += [f"route: {route}" for route in report.routes]
    lines.append(f"DNS: {', '.join(report.dns) or 'none'}")
    ping = report.gateway_ping
    if ping is not None:
        average = f", {ping.average_ms:.1f} ms" if ping.average_ms is not None else ""
        lines.append(f"ping {ping.target}: {ping.received}/{ping.sent} answered{average}")
    lines += [f"problem: {problem}" for problem in report.problems]
    return lines


def _network(target: Target, params: NetworkDiagnosticsParams, step: str) -> Outcome:
    report = network_diagnostics(target.phase.host, count=params.count)
    problems = f"{len(report.problems)} problem(s)" if report.problems else "no problem seen"
    return Outcome(changed=False, note=problems, report="\n".join(_network_lines(report)))


class DiskBenchmarkParams(ActionParams):
    device: Annotated[str, PATH] = Field(
        description="the disk's device on the rescue, e.g. '{{ facts.root_device }}'"
    )
    write: Annotated[bool, FLAG] = Field(
        False, description="also a write test on a scratch file (mount: root; not in check mode)"
    )
    size_mb: Annotated[int, COUNT] = Field(256, description="MB read sequentially")


def _benchmark(target: Target, params: DiskBenchmarkParams, step: str) -> Outcome:
    phase = target.phase
    write = params.write and not phase.dry_run
    if write and phase.mount is None:
        raise StepFailedError("a write test needs the guest mounted (mount: root)")
    report = disk_benchmark(
        phase.host, params.device, write=write, mounted=phase.mount, size_mb=params.size_mb
    )
    return Outcome(changed=False, report="\n".join(report.lines()))


class CollectLogsParams(ActionParams):
    destination: Annotated[str, TEXT] = Field(
        description="local file for the tarball (on this machine, e.g. 'lab-1-logs.tar.gz')"
    )
    boots: Annotated[int, COUNT] = Field(2, description="how many last boots of the journal")
    max_file_mib: Annotated[int, COUNT] = Field(
        64, description="log files above this many MiB are left out (and listed)"
    )


def _collect(target: Target, params: CollectLogsParams, step: str) -> Outcome:
    bundle = collect_logs(
        target.phase.need_guest(),
        destination=Path(params.destination).expanduser(),
        boots=params.boots,
        max_file_size=params.max_file_mib * MIB,
    )
    left_out = [f"left out: {name}" for name in bundle.left_out]
    journal = "journal files as they are" if bundle.raw_journal else f"{len(bundle.boots)} boots"
    return Outcome(
        changed=False,
        note=f"{bundle.path} ({human_size(bundle.size)}, {bundle.files} files, {journal})",
        report="\n".join(left_out),
    )


ACTIONS = (
    Action(
        "fsck",
        "Check a filesystem (read-only), or repair it when asked; it must not be mounted.",
        FsckParams,
        "the filesystem, only with repair: true (not undone)",
        "rescue",
        _fsck,
    ),
    Action(
        "network_diagnostics",
        "Addresses, routes, DNS and a ping of the gateway, seen from the rescue system.",
        NetworkDiagnosticsParams,
        "nothing",
        "rescue",
        _network,
    ),
    Action(
        "disk_benchmark",
        "Measure the disk's read speed (and write speed on a scratch file when asked).",
        DiskBenchmarkParams,
        "nothing (a scratch file is written and removed with write: true)",
        "rescue",
        _benchmark,
    ),
    Action(
        "collect_logs",
        "Bring the guest's journal (last boots) and /var/log home as one tarball.",
        CollectLogsParams,
        "nothing in the guest; writes `destination` locally (mode 0600)",
        "guest",
        _collect,
    ),
)
