"""Running a playbook on an instance, as the procedure reads: rescue → phase → steps → leave.

The phase (``cloudrescue.phase``) finds and mounts the instance's disk as the playbook's
``mount`` says (read-only in check mode), and on the way out restores what a failed step had
changed and unmounts; the session (``RescueWorkflow.session``) always unrescues.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from cloudrescue.cloud.base import ServerInfo
from cloudrescue.disks import MountedGuest, UnmountReport
from cloudrescue.phase import DiskChoice, DiskOpener, open_disk_session, open_phase
from cloudrescue.playbook.engine import StepReport, StepsResult, run_steps
from cloudrescue.playbook.params import Resolved
from cloudrescue.playbook.schema import Playbook
from cloudrescue.rescue import RescueWorkflow


@dataclass(frozen=True)
class RunReport:
    """What a playbook run did (or, in check mode, would do) to an instance."""

    playbook: Playbook
    server: ServerInfo
    dry_run: bool
    result: StepsResult
    mount: MountedGuest | None = None
    unmount: UnmountReport | None = None

    @property
    def changed(self) -> bool:
        """Whether any step changed (or in check mode would change) something."""
        return any(report.status == "changed" for report in self.result.steps)


def run_playbook(
    workflow: RescueWorkflow,
    server: ServerInfo,
    playbook: Playbook,
    values: Mapping[str, Resolved],
    *,
    dry_run: bool,
    disk: DiskChoice,
    on_step: Callable[[StepReport], None] = lambda report: None,
    open_disks: DiskOpener = open_disk_session,
) -> RunReport:
    """Run ``playbook`` on ``server`` through rescue mode; always unmount and unrescue."""
    with workflow.session(server, command=f"run {playbook.name}") as rescued, open_phase(
        rescued,
        playbook.mount,
        disk,
        dry_run=dry_run,
        events=workflow.events,
        chroot=playbook.chroot,
        open_disks=open_disks,
    ) as phase:
        result = run_steps(playbook, values, phase, on_step=on_step)
    current = workflow.backend.get_server(server.id)
    return RunReport(playbook, current, dry_run, result, phase.mount, phase.unmount)
