"""Repair one instance: rescue → find and mount its disk → apply a fix → unmount → unrescue.

The fix is any function of the mounted guest (``GuestFS``) returning the changes it made; in
a dry run the disk is mounted read-only and the same function only *computes* its changes.
If the fix fails part way, the files it had changed are restored from their backups.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from cloudrescue.cloud.base import ServerInfo
from cloudrescue.disks import AskRoot, DiskSession, MountedGuest, UnmountReport
from cloudrescue.errors import CloudRescueError, FixFailedError
from cloudrescue.guestfs import Change, GuestFS
from cloudrescue.rescue import RescueWorkflow

Fix = Callable[[GuestFS, MountedGuest], list[Change]]


@dataclass(frozen=True)
class DiskOptions:
    """Which disk to repair and how to mount it."""

    disk: str | None = None
    mountpoint: str = "/mnt"
    chroot: bool = False
    ask: AskRoot | None = None  # choose among several roots (else SeveralRootsError)


@dataclass
class RepairReport:
    """What a repair did (or, in a dry run, would do)."""

    server: ServerInfo
    dry_run: bool
    guest: MountedGuest | None = None
    changes: list[Change] = field(default_factory=list)
    unmount: UnmountReport | None = None

    @property
    def changed(self) -> bool:
        return bool(self.changes)


def repair(
    workflow: RescueWorkflow,
    server: ServerInfo,
    fix: Fix,
    *,
    command: str,
    dry_run: bool,
    disk: DiskOptions,
) -> RepairReport:
    """Run ``fix`` on ``server``'s disk through rescue mode; always unmount and unrescue."""
    report = RepairReport(server=server, dry_run=dry_run)
    volume_id = server.volume_ids[0] if server.volume_backed else None
    with workflow.session(server, command=command) as rescued:
        with DiskSession(rescued.host, mountpoint=disk.mountpoint) as disks:
            workflow.events.stage("finding and mounting the instance's disk")
            report.guest = disks.mount(
                disk=disk.disk,
                volume_id=volume_id,
                ask=disk.ask,
                chroot=disk.chroot,
                read_only=dry_run,
            )
            workflow.events.note(
                f"mounted {report.guest.filesystem.filesystem.device} "
                f"({report.guest.filesystem.os_name or 'unknown OS'}) on {report.guest.root}"
            )
            guest = GuestFS(rescued.host, report.guest.root, dry_run=dry_run)
            workflow.events.stage("checking what to change" if dry_run else "applying the fix")
            try:
                report.changes = fix(guest, report.guest)
            except (CloudRescueError, OSError) as error:
                if not guest.changes or dry_run:
                    raise  # nothing was written: the error stands as it is
                restored = list(guest.rollback())
                message = error.message if isinstance(error, CloudRescueError) else str(error)
                raise FixFailedError(
                    f"{command} failed on {server.name}: {message}; "
                    f"restored {len(restored)} change(s) from backups"
                ) from error
            workflow.events.stage("syncing and unmounting the disk")
        report.unmount = disks.report
    report.server = workflow.backend.get_server(server.id)
    return report
