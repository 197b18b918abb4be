"""A whole playbook run without root: fake cloud, this machine as the rescue, a guest tree.

``run_playbook`` (``run_playbooks`` with one playbook) goes session → phase → steps → rollback
→ unmount → unrescue exactly as on a real cloud; only the disk session is a tree under tmp
(``TreeDisks``), so every mount phase, check mode, rollback on failure and on Ctrl-C is
exercised here. Several playbooks in one rescue: ``test_run_several.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import paramiko
import pytest

from cloudrescue.errors import DiskStillMountedError, ExitStatus, FixFailedError, InvalidInputError
from cloudrescue.journal import Journal
from cloudrescue.phase import DiskChoice, Phase, open_phase
from cloudrescue.playbook.engine import StepReport
from cloudrescue.playbook.params import resolve
from cloudrescue.playbook.runner import RunReport, run_playbook
from cloudrescue.remote.base import CommandResult
from cloudrescue.remote.ssh import Endpoint
from cloudrescue.rescue import RescueSettings, RescueWorkflow
from tests.fakes import (
    FakeClock,
    FakeCloud,
    FakeConnect,
    RecordingEvents,
    RescueHost,
    TreeDisks,
)
from tests.playbook.conftest import build_guest, load, no_secret, snapshot

EDIT = """\
name: edit-hostname
description: Edit the guest.
parameters:
  name: {type: string, description: The new name., default: repaired}
steps:
  - name: Name the guest
    action: ensure_line
    path: /etc/hostname
    line: "{{ name }}"
    match: "^[a-z0-9-]+$"
message: "renamed on {{ facts.address }}"
"""
FAILING = """\
name: edit-then-fail
description: Edit, then fail.
steps:
  - name: Name the guest
    action: ensure_line
    path: /etc/hostname
    line: broken
    match: "^[a-z0-9-]+$"
  - name: Fail
    action: run_rescue
    argv: ["false"]
"""
UNMOUNTED = """\
name: look-at-the-device
description: Look at the device, unmounted.
mount: unmounted
steps:
  - name: Show the device
    action: run_rescue
    argv: [echo, "{{ facts.root_device }}", "{{ facts.root_fstype }}"]
    read_only: true
"""
RESCUE_ONLY = """\
name: rescue-only
description: Work on the rescue system alone.
mount: none
steps:
  - name: Say hello
    action: run_rescue
    argv: [echo, hello]
    read_only: true
message: "reached {{ facts.address }}"
"""


class Run:
    """A fake cloud with one instance whose disk is a guest tree."""

    def __init__(
        self,
        tmp_path: Path,
        make_host: Callable[[Endpoint, Path, str], RescueHost] = RescueHost,
    ) -> None:
        self.clock = FakeClock()
        self.cloud = FakeCloud(self.clock)
        self.server = self.cloud.add("web-1")
        self.rescue_root = tmp_path / "rescue"
        self.tree = self.rescue_root / "mnt"
        build_guest(self.tree)
        self.disks = TreeDisks(self.tree)
        self.events = RecordingEvents()
        self.journal = Journal(tmp_path / "state")
        self.workflow_connect = FakeConnect(self.cloud, self.rescue_root, make_host=make_host)
        self.workflow = RescueWorkflow(
            self.cloud,
            self.journal,
            self.events,
            RescueSettings(),
            connect=self.workflow_connect,
            clock=self.clock,
            sleep=self.clock.sleep,
        )
        self.steps: list[StepReport] = []

    def play(self, text: str, *, dry_run: bool = False, **given: list[str]) -> RunReport:
        playbook = load(text)
        return run_playbook(
            self.workflow,
            self.server,
            playbook,
            resolve(playbook, given, no_secret),
            dry_run=dry_run,
            disk=DiskChoice(),
            on_step=self.steps.append,
            open_disks=lambda host, mountpoint: self.disks,
        )

    def left_alone(self) -> None:
        """The instance is back, its journal entry closed, nothing left mounted."""
        info = self.cloud.servers[self.server.id].info
        assert (info.status, info.task_state) == ("ACTIVE", None)
        assert [e.state for e in self.journal.entries(include_restored=True)] == ["restored"]
        assert self.disks.mounted == []


@pytest.fixture
def run(tmp_path: Path) -> Run:
    return Run(tmp_path)


def test_a_playbook_run_mounts_changes_reports_and_unrescues(run: Run) -> None:
    report = run.play(EDIT, name=["web-1"])
    assert (run.tree / "etc/hostname").read_text() == "web-1\n"
    assert list((run.tree / "etc").glob("hostname.cloudrescue-*"))
    assert report.changed and not report.dry_run
    assert [step.status for step in report.result.steps] == ["changed"]
    assert report.result.message == "renamed on 203.0.113.10"
    assert report.runs[0].mount is not None and not report.runs[0].mount.read_only
    assert report.runs[0].unmount is not None and report.runs[0].unmount.done
    assert report.server.status == "ACTIVE"
    assert [step.status for step in run.steps] == ["changed"]
    assert "applying the fix" in run.events.messages
    assert "syncing and unmounting the disk" in run.events.messages
    run.left_alone()
    again = run.play(EDIT, name=["web-1"])
    assert not again.changed


def test_check_mode_mounts_read_only_and_changes_nothing(run: Run) -> None:
    before = snapshot(run.tree)
    report = run.play(EDIT, dry_run=True)
    assert report.dry_run and report.changed
    assert report.runs[0].mount is not None and report.runs[0].mount.read_only
    assert "checking what to change" in run.events.messages
    [change] = report.result.changes
    assert "+repaired" in change.diff
    assert snapshot(run.tree) == before
    run.left_alone()


def raising(error: Exception) -> Callable[[Endpoint, Path, str], RescueHost]:
    """A rescue on which running ``false`` raises ``error`` (a bug, a broken SSH channel)."""

    class Raising(RescueHost):
        def run(
            self,
            argv: Sequence[str],
            *,
            stdin: bytes | None = None,
            check: bool = True,
            timeout: float | None = None,
            env: Mapping[str, str] | None = None,
        ) -> CommandResult:
            if list(argv) == ["false"]:
                raise error
            return super().run(argv, stdin=stdin, check=check, timeout=timeout, env=env)

    return Raising


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (None, "`false` exited with status 1: no output"),  # the step fails the ordinary way
        (ValueError("a value the step cannot use"), "a value the step cannot use"),
        (paramiko.SSHException("Channel closed."), "Channel closed."),
        (paramiko.SSHException(), "SSHException"),  # no message: its name at least
    ],
    ids=["command-fails", "ValueError", "SSHException", "SSHException-without-message"],
)
def test_a_failing_step_restores_what_was_changed(
    tmp_path: Path, error: Exception | None, said: str
) -> None:
    run = Run(tmp_path) if error is None else Run(tmp_path, make_host=raising(error))
    before = snapshot(run.tree)
    with pytest.raises(FixFailedError) as raised:
        run.play(FAILING)
    assert raised.value.message == f"{said}; restored 1 change(s) from backups"  # one line
    assert raised.value.exit_status == ExitStatus.FIX_FAILED
    assert error is None or raised.value.__cause__ is error
    assert snapshot(run.tree) == before
    assert [step.status for step in run.steps] == ["changed", "failed"]
    run.left_alone()


def test_ctrl_c_in_a_step_restores_and_still_interrupts(run: Run) -> None:
    before = snapshot(run.tree)

    def interrupt(step: StepReport) -> None:
        raise KeyboardInterrupt

    playbook = load(EDIT)
    with pytest.raises(KeyboardInterrupt):
        run_playbook(
            run.workflow,
            run.server,
            playbook,
            resolve(playbook, {}, no_secret),
            dry_run=False,
            disk=DiskChoice(),
            on_step=interrupt,
            open_disks=lambda host, mountpoint: run.disks,
        )
    assert snapshot(run.tree) == before
    assert "restored 1 change(s) from backups" in run.events.messages
    run.left_alone()


def test_an_unmounted_phase_knows_the_device_not_the_files(run: Run) -> None:
    report = run.play(UNMOUNTED)
    [step] = report.result.steps
    [command] = step.outcome.commands
    assert command.output == "/dev/vdb1 ext4"
    assert report.runs[0].mount is None and report.runs[0].unmount is not None
    assert "finding the instance's disk (left unmounted)" in run.events.messages
    run.left_alone()


def test_a_rescue_only_phase_touches_no_disk(run: Run) -> None:
    before = snapshot(run.tree)
    report = run.play(RESCUE_ONLY)
    assert [step.status for step in run.steps] == ["ok"]
    assert report.result.message == "reached 203.0.113.10"
    assert report.runs[0].mount is None and report.runs[0].unmount is None
    assert "running the steps on the rescue system" in run.events.messages
    assert snapshot(run.tree) == before
    assert run.disks.report.done == []
    run.left_alone()


def test_a_phase_without_a_mounted_guest_says_what_it_needs(tmp_path: Path) -> None:
    run = Run(tmp_path)
    with run.workflow.session(run.server, command="test") as rescued, open_phase(
        rescued, "none", DiskChoice(), dry_run=False, events=run.events
    ) as phase:
        assert isinstance(phase, Phase) and phase.mount is None
        with pytest.raises(InvalidInputError, match=r"mount: root or unmounted"):
            phase.need_root()
        with pytest.raises(InvalidInputError, match=r"mount: root\)"):
            phase.need_guest()


@pytest.mark.parametrize("problem", ["busy", "lazy", "interrupted twice"])
def test_a_disk_left_mounted_keeps_the_instance_in_rescue(run: Run, problem: str) -> None:
    if problem == "busy":
        run.disks.busy = 2
    elif problem == "lazy":
        run.disks.lazy = True
    else:
        run.disks.interrupt_unmounts = 2
    with pytest.raises(DiskStillMountedError, match="web-1 stays in rescue") as raised:
        run.play(EDIT)
    assert raised.value.hint is not None and "cloudrescue unrescue web-1" in raised.value.hint
    info = run.cloud.servers[run.server.id].info
    assert (info.status, info.task_state) == ("RESCUE", None)
    [entry] = run.journal.entries()
    assert entry.state == "held" and entry.note.startswith("kept in rescue: web-1 stays")


def test_one_ctrl_c_while_unmounting_finishes_the_unmount_then_unrescues(run: Run) -> None:
    run.disks.interrupt_unmounts = 1
    with pytest.raises(KeyboardInterrupt):
        run.play(EDIT)
    assert "interrupted while unmounting: finishing the unmount first" in run.events.messages
    run.left_alone()


def test_a_cut_connection_is_logged_in_again_to_restore_and_unmount(run: Run) -> None:
    before = snapshot(run.tree)

    def cut_after_the_first_change(step: StepReport) -> None:
        if step.status == "changed":
            run.workflow_connect.hosts[-1].cut = True

    playbook = load(FAILING)
    with pytest.raises(FixFailedError, match=r"was lost; restored 1 change\(s\) from backups"):
        run_playbook(
            run.workflow,
            run.server,
            playbook,
            resolve(playbook, {}, no_secret),
            dry_run=False,
            disk=DiskChoice(),
            on_step=cut_after_the_first_change,
            open_disks=lambda host, mountpoint: run.disks,
        )
    assert snapshot(run.tree) == before
    assert len(run.workflow_connect.hosts) == 2  # the second login, pinned to the first key
    assert "logging in to 203.0.113.10 again (the connection was cut)" in run.events.messages
    run.left_alone()
