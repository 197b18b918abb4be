"""Running playbooks on an instance, as the procedure reads: rescue → phase → steps → leave.

One rescue runs one or several playbooks, in order. Each playbook gets a mount phase of its
own (``cloudrescue.phase``), as its ``mount`` and ``chroot`` say (read-only in check mode):
its rollback covers exactly its own changes, and a playbook after ``fix-fstab`` mounts the
disk with the repaired fstab. On the way out of a phase the files a failed step had changed
are restored and the disk is unmounted; the session (``RescueWorkflow.session``) always
unrescues. The first playbook that fails ends the run: what the earlier ones changed is kept,
the rest are not run; with ``keep_going`` (check mode: ``diagnose --deep``) the others run
still, each failure recorded in its ``PlaybookRun``. ``run_rescued`` is the loop inside a
rescue someone else holds (``diagnose --deep`` runs its own checks in the same rescue).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from cloudrescue.cloud.base import ServerInfo
from cloudrescue.disks import MountedGuest, UnmountReport
from cloudrescue.errors import CloudRescueError, KeptInRescueError
from cloudrescue.events import Events
from cloudrescue.phase import DiskChoice, DiskOpener, Phase, open_disk_session, open_phase
from cloudrescue.playbook.engine import StepReport, StepsResult, run_steps
from cloudrescue.playbook.params import Resolved, check_distinct
from cloudrescue.playbook.schema import Playbook
from cloudrescue.rescue import RescuedInstance, RescueWorkflow

PlaybookStatus = Literal["changed", "ok", "failed", "not-run"]
StepSink = Callable[[StepReport], None]


@dataclass(frozen=True)
class PlaybookRun:
    """What one playbook of a run did: its steps and its phase, or the error that ended it."""

    playbook: Playbook
    status: PlaybookStatus
    result: StepsResult = field(default_factory=lambda: StepsResult((), None))
    mount: MountedGuest | None = None
    unmount: UnmountReport | None = None
    error: CloudRescueError | None = None  # set when ``status`` is ``failed``


@dataclass(frozen=True)
class RunReport:
    """What a run did (or, in check mode, would do) to an instance: each playbook, in order."""

    server: ServerInfo
    dry_run: bool
    runs: tuple[PlaybookRun, ...]

    @property
    def result(self) -> StepsResult:
        """Every step that ran, in order, and the closing messages of the playbooks."""
        messages = [run.result.message for run in self.runs if run.result.message]
        steps = tuple(step for run in self.runs for step in run.result.steps)
        return StepsResult(steps, "\n".join(messages) or None)

    @property
    def changed(self) -> bool:
        """Whether a playbook changed (or in check mode would change) something, and kept it."""
        return any(run.status == "changed" for run in self.runs)

    @property
    def failed(self) -> PlaybookRun | None:
        """The playbook that failed and ended the run (``None``: every one ran)."""
        return next((run for run in self.runs if run.status == "failed"), None)


def _run_one(
    rescued: RescuedInstance,
    playbook: Playbook,
    values: Mapping[str, Resolved],
    *,
    dry_run: bool,
    disk: DiskChoice,
    events: Events,
    on_step: StepSink,
    open_disks: DiskOpener,
) -> PlaybookRun:
    """``playbook`` in a phase of its own; its failure (restored, unmounted) is returned.

    An error that keeps the instance in rescue (its disk still mounted) and Ctrl-C are raised.
    """
    seen: list[StepReport] = []

    def step_done(report: StepReport) -> None:
        seen.append(report)
        on_step(report)

    phase: Phase | None = None
    try:
        with open_phase(
            rescued,
            playbook.mount,
            disk,
            dry_run=dry_run,
            events=events,
            chroot=playbook.chroot,
            open_disks=open_disks,
        ) as phase:
            result = run_steps(playbook, values, phase, on_step=step_done)
    except KeptInRescueError:
        raise
    except CloudRescueError as error:
        mount = phase.mount if phase is not None else None
        unmount = phase.unmount if phase is not None else None
        steps = StepsResult(tuple(seen), None)
        return PlaybookRun(playbook, "failed", steps, mount, unmount, error)
    changed = any(step.status == "changed" for step in result.steps)
    status: PlaybookStatus = "changed" if changed else "ok"
    return PlaybookRun(playbook, status, result, phase.mount, phase.unmount)


def run_rescued(
    rescued: RescuedInstance,
    playbooks: Sequence[tuple[Playbook, Mapping[str, Resolved]]],
    *,
    dry_run: bool,
    disk: DiskChoice,
    events: Events,
    on_step: StepSink = lambda report: None,
    open_disks: DiskOpener = open_disk_session,
    keep_going: bool = False,
) -> list[PlaybookRun]:
    """``playbooks`` in order on the ``rescued`` instance, a phase each; the first that fails
    ends the loop (the rest ``not-run``) unless ``keep_going``. Nothing is raised for a
    playbook's failure; a disk left mounted and Ctrl-C are."""
    runs: list[PlaybookRun] = []
    try:
        for number, (playbook, values) in enumerate(playbooks, start=1):
            if len(playbooks) > 1:
                events.stage(f"playbook {number}/{len(playbooks)}: {playbook.name}")
            run = _run_one(
                rescued,
                playbook,
                values,
                dry_run=dry_run,
                disk=disk,
                events=events,
                on_step=on_step,
                open_disks=open_disks,
            )
            runs.append(run)
            if run.error is not None and not keep_going:
                break
    except BaseException:  # Ctrl-C, or a disk left mounted: say what stays changed
        kept = [run.playbook.name for run in runs if run.status == "changed"]
        if kept and not dry_run:
            events.note(f"what {', '.join(kept)} changed is kept")
        raise
    return runs + [PlaybookRun(playbook, "not-run") for playbook, _ in playbooks[len(runs) :]]


def run_playbooks(
    workflow: RescueWorkflow,
    server: ServerInfo,
    playbooks: Sequence[tuple[Playbook, Mapping[str, Resolved]]],
    *,
    dry_run: bool,
    disk: DiskChoice,
    on_step: StepSink = lambda report: None,
    open_disks: DiskOpener = open_disk_session,
) -> RunReport:
    """Run ``playbooks`` (each with its values) on ``server`` in one rescue, in order.

    The first that fails ends the run and is in the report with its error (nothing is
    raised for it); the earlier ones' changes are kept, the rest are ``not-run``. The disk is
    always unmounted and the instance unrescued, unless unmounting failed (then it is held).
    """
    check_distinct([playbook for playbook, _ in playbooks])
    names = " ".join(playbook.name for playbook, _ in playbooks)
    with workflow.session(server, command=f"run {names}") as rescued:
        runs = run_rescued(
            rescued,
            playbooks,
            dry_run=dry_run,
            disk=disk,
            events=workflow.events,
            on_step=on_step,
            open_disks=open_disks,
        )
    return RunReport(workflow.backend.get_server(server.id), dry_run, tuple(runs))


def run_playbook(
    workflow: RescueWorkflow,
    server: ServerInfo,
    playbook: Playbook,
    values: Mapping[str, Resolved],
    *,
    dry_run: bool,
    disk: DiskChoice,
    on_step: StepSink = lambda report: None,
    open_disks: DiskOpener = open_disk_session,
) -> RunReport:
    """``run_playbooks`` with one playbook, its failure raised (for the fleet's workers)."""
    report = run_playbooks(
        workflow,
        server,
        [(playbook, values)],
        dry_run=dry_run,
        disk=disk,
        on_step=on_step,
        open_disks=open_disks,
    )
    failed = report.failed
    if failed is not None and failed.error is not None:
        raise failed.error
    return report
