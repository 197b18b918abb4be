"""Running a playbook on an instance: rescue → (find and mount its disk) → steps → unrescue.

``mount: root`` goes through ``repair`` (read-only mount in check mode, rollback from backups
when a step fails after writing). ``mount: unmounted`` finds the root filesystem without
mounting it (fsck and friends); ``mount: none`` runs on the rescue system alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from cloudrescue.cloud.base import ServerInfo
from cloudrescue.disks import DiskSession, MountedGuest, UnmountReport
from cloudrescue.guestfs import Change, GuestFS
from cloudrescue.playbook.engine import StepReport, StepsResult, run_steps
from cloudrescue.playbook.facts import FactSource
from cloudrescue.playbook.params import Resolved
from cloudrescue.playbook.schema import Playbook
from cloudrescue.repair import DiskOptions, repair
from cloudrescue.rescue import RescueWorkflow, pick_address


@dataclass(frozen=True)
class PlaybookReport:
    """What a playbook run did (or, in check mode, would do) to an instance."""

    playbook: Playbook
    server: ServerInfo
    dry_run: bool
    result: StepsResult
    guest: MountedGuest | None = None
    unmount: UnmountReport | None = None

    @property
    def changed(self) -> bool:
        return any(report.status == "changed" for report in self.result.steps)


def run_playbook(
    workflow: RescueWorkflow,
    server: ServerInfo,
    playbook: Playbook,
    values: Mapping[str, Resolved],
    *,
    dry_run: bool,
    disk: DiskOptions,
    on_step: Callable[[StepReport], None],
) -> PlaybookReport:
    """Run ``playbook`` on ``server`` through rescue mode; always unrescue."""
    command = f"run {playbook.name}"
    address = pick_address(server, workflow.settings.address)
    if playbook.mount == "root":
        results: list[StepsResult] = []

        def fix(guest: GuestFS, mounted: MountedGuest) -> list[Change]:
            source = FactSource(address, mounted.filesystem, guest)
            result = run_steps(
                playbook,
                values,
                host=guest.host,
                dry_run=dry_run,
                source=source,
                guest=guest,
                mounted=mounted,
                on_step=on_step,
            )
            results.append(result)
            return result.changes

        options = DiskOptions(disk.disk, disk.mountpoint, chroot=playbook.chroot, ask=disk.ask)
        done = repair(workflow, server, fix, command=command, dry_run=dry_run, disk=options)
        return PlaybookReport(
            playbook, done.server, dry_run, results[0], guest=done.guest, unmount=done.unmount
        )
    unmount = None
    with workflow.session(server, command=command) as rescued:
        if playbook.mount == "unmounted":
            volume_id = server.volume_ids[0] if server.volume_backed else None
            with DiskSession(rescued.host, mountpoint=disk.mountpoint) as disks:
                workflow.events.stage("finding the instance's disk (left unmounted)")
                root = disks.choose_root(disk=disk.disk, volume_id=volume_id, ask=disk.ask)
                workflow.events.note(f"root filesystem: {root.describe()}")
                source = FactSource(address, root)
                workflow.events.stage("running the steps")
                result = run_steps(
                    playbook, values, host=rescued.host, dry_run=dry_run, source=source,
                    on_step=on_step,
                )
            unmount = disks.report
        else:
            workflow.events.stage("running the steps on the rescue system")
            result = run_steps(
                playbook, values, host=rescued.host, dry_run=dry_run,
                source=FactSource(address), on_step=on_step,
            )
    current = workflow.backend.get_server(server.id)
    return PlaybookReport(playbook, current, dry_run, result, unmount=unmount)
