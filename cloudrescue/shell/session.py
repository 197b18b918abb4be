"""``cloudrescue shell``: a root shell on an instance's own disk, as the procedure reads::

    rescue it (or log in again to the rescue a kept shell left) → find and mount its disk
    → list the guest files people repair by hand → stage the shell (in tmux when the rescue
    has it) → attach the local terminal (and reattach after a cut connection)
    → the shell's exit status → list again and compare → unmount → unrescue, or keep it

The local terminal (raw mode, signals, the ``Ctrl-]`` escapes) is ``ShellTerminal``'s job; the
rescue side (sandboxed chroot, tmux) is ``cloudrescue.shell.chroot``'s. A shell left running
(``Ctrl-] k``, a connection that cannot be made again, a closed terminal) keeps the instance
in rescue with its disk mounted, recorded (``cloudrescue.shell.saved``) for the next
``cloudrescue shell`` to reattach to, or for ``unrescue`` to end.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from cloudrescue.cloud.base import ServerInfo
from cloudrescue.disks import MountedGuest
from cloudrescue.disks.teardown import UndoStep
from cloudrescue.errors import CloudRescueError, ExitStatus, KeptInRescueError
from cloudrescue.journal import JournalEntry
from cloudrescue.phase import DiskChoice, Disks, open_disk_session, unmount_disks
from cloudrescue.remote.base import Host
from cloudrescue.remote.base import TerminalRequest as TerminalRequest  # the CLI's, from here
from cloudrescue.remote.reconnect import ReconnectingHost
from cloudrescue.rescue import RescuedInstance, RescueWorkflow
from cloudrescue.rescue_access import authorize_rescue_keys
from cloudrescue.shell import chroot, saved
from cloudrescue.shell.changes import CHANGE_KINDS, Change, Listing, compare, take_listing
from cloudrescue.shell.chroot import Program
from cloudrescue.shell.terminal import LeaveChoice, SessionEnd

LeaveRule = Literal["ask", "unrescue", "keep"]
REATTACH_ATTEMPTS = 3
SYNC_TIMEOUT = 120.0
SHELL_COMMAND = "shell"


class ShellDetachedError(KeptInRescueError):
    """The connection to the rescue was lost and could not be made again: the shell goes on
    in tmux, the instance stays in rescue with its disk mounted."""

    exit_status = ExitStatus.CONNECTION


class ShellDisks(Disks, Protocol):
    """A disk session a shell can leave mounted for another process to take over
    (``DiskSession``; a local tree in unit tests)."""

    def undo_steps(self) -> tuple[UndoStep, ...]:
        """What unmounting would undo, oldest first (saved with the shell)."""
        ...

    def adopt(self, steps: Sequence[UndoStep]) -> None:
        """Take over what another session set up, to unmount it."""
        ...


ShellDiskOpener = Callable[[Host, str], ShellDisks]


class ShellTerminal(Protocol):
    """The user's side: the terminal the shell is attached to, and the questions."""

    def request(self) -> TerminalRequest | None:
        """The PTY to ask for (``$TERM`` and the size); ``None`` for a script (no PTY)."""
        ...

    def attach(self, channel: Any, sync: Callable[[], str]) -> SessionEnd:
        """Pass the terminal through ``channel`` until the shell ends or the user leaves
        (``sync()`` flushes the disk's writes on the rescue, for ``Ctrl-] s``)."""
        ...

    def show(self, lines: Sequence[str]) -> None:
        """Tell the user something (the banner, a reattach), on their terminal."""
        ...

    def ask_unrescue(self, name: str) -> bool:
        """``unrescue NAME now? [Y/n]`` (on a terminal; a script gets yes)."""
        ...


@dataclass(frozen=True)
class ShellOptions:
    """What ``cloudrescue shell`` was asked for."""

    disk: DiskChoice = field(default_factory=DiskChoice)
    read_only: bool = False
    chroot: bool = True
    program: Program = "login"
    command: str | None = None
    leave: LeaveRule = "ask"


@dataclass(frozen=True)
class ShellReport:
    """How a shell went: its exit status, what it changed, where the instance is now."""

    server: ServerInfo
    run_id: str
    exit_status: int | None
    changes: tuple[Change, ...]
    changes_complete: bool
    kept_in_rescue: bool
    shell_running: bool  # left running in tmux: `cloudrescue shell` reattaches
    mount: MountedGuest | None
    signal: int | None = None  # SIGTERM / SIGHUP ended the session


@dataclass(frozen=True)
class _Attached:
    exit_status: int | None
    choice: LeaveChoice | None
    running: bool  # the shell goes on (in tmux) after we left
    signal: int | None = None  # SIGTERM / SIGHUP ended it


def _banner(server: ServerInfo, mount: MountedGuest | None, stage: chroot.ShellStage) -> list[str]:
    """Where the shell is: the guest's OS (guest text: the terminal escapes it), the device,
    what is mounted where, how to leave."""
    if stage.chroot:
        where = "in a chroot of its disk (the guest's own shell, sandboxed)"
    else:
        where = f"on the rescue system, its disk on {stage.root}"
    lines = [f"cloudrescue shell on {server.name}, {where}"]
    if mount is not None:
        os_name = mount.filesystem.os_name or "unknown OS"
        read_only = ", read-only" if mount.read_only else ""
        lines.append(f"  {os_name}: {mount.device} on / ({mount.root} on the rescue){read_only}")
        lines += [f"  {record.source} on {record.guest_path}" for record in mount.mounts[1:]]
        lines += [f"  not mounted: {skip.mountpoint} ({skip.reason})" for skip in mount.skipped]
    lines.append("  leave with `exit` (the instance is then unrescued), or Ctrl-] then ? for more")
    return lines


def held_shell(
    workflow: RescueWorkflow, server: ServerInfo
) -> tuple[JournalEntry, saved.SavedShell] | None:
    """The shell a run left on ``server`` (kept in rescue), when there is one to take over."""
    state_dir = workflow.journal.path.parent
    for entry in workflow.journal.entries():
        if entry.server_id != server.id or entry.command != SHELL_COMMAND:
            continue
        if entry.state != "held" and entry.process_alive:
            continue  # another cloudrescue runs this shell right now
        record = saved.load(state_dir, entry.run_id)
        if record is not None:
            return entry, record
    return None


class _Shell:
    """One shell on one rescued instance: mounted, staged, attached, and taken down."""

    def __init__(
        self,
        workflow: RescueWorkflow,
        rescued: RescuedInstance,
        disks: ShellDisks,
        terminal: ShellTerminal,
        options: ShellOptions,
    ) -> None:
        self.workflow = workflow
        self.rescued = rescued
        self.disks = disks
        self.terminal = terminal
        self.options = options
        self.state_dir = workflow.journal.path.parent
        self.multiplexed = False
        self.mount: MountedGuest | None = None

    @property
    def host(self) -> ReconnectingHost:
        return self.rescued.host

    @property
    def name(self) -> str:
        return self.rescued.server.name

    # -- entering -----------------------------------------------------------------------------

    def mount_disk(self) -> chroot.ShellStage:
        """Find and mount the instance's disk (undone again when that fails half-way)."""
        events, server, disk = self.workflow.events, self.rescued.server, self.options.disk
        events.stage("finding and mounting the instance's disk")
        try:
            volume_id = server.volume_ids[0] if server.volume_backed else None
            root = self.disks.choose_root(disk=disk.selector, volume_id=volume_id, ask=disk.ask)
            self.mount = self.disks.mount(root=root, chroot=False, read_only=self.options.read_only)
        except BaseException:
            unmount_disks(self.disks, self.name, events, self.rescued.host.reconnect)
            raise
        os_name = self.mount.filesystem.os_name or "unknown OS"
        events.note(f"mounted {self.mount.device} ({os_name}) on {self.mount.root}")
        return chroot.ShellStage(
            chroot.stage_name(self.rescued.run_id), self.mount.root, self.options.chroot
        )

    def save(self, stage: chroot.ShellStage, before: Listing) -> None:
        """Record the shell so that another process can reattach to it or take it down."""
        record = saved.SavedShell(
            run_id=self.rescued.run_id,
            server_id=self.rescued.server.id,
            address=self.rescued.address,
            fingerprint=self.rescued.host.host_key_fingerprint,
            stage=stage.name,
            root=stage.root,
            chroot=stage.chroot,
            undo=self.disks.undo_steps(),
            before=before,
        )
        saved.save(self.state_dir, record)

    # -- the terminal -------------------------------------------------------------------------

    def run(self, stage: chroot.ShellStage, before: Listing, *, reattach: bool) -> ShellReport:
        """Attach (staging a new shell unless ``reattach``), then take it down or leave it
        running; ``ShellDetachedError`` when the rescue cannot be reached again."""
        try:
            if reattach:
                self.multiplexed = True
            else:
                has_tmux = chroot.prepare(
                    self.host, stage, self.options.program, self.options.command
                )
                self.multiplexed = has_tmux and self.options.program == "login"
                self.terminal.show(_banner(self.rescued.server, self.mount, stage))
            self.workflow.events.stage("shell open")
            attached = self._attach(stage)
        except ShellDetachedError:
            raise
        except BaseException:
            self.take_down(stage, before)
            raise
        if attached.running:
            return self._report(attached, (), True, kept=True)
        changes, complete = self.take_down(stage, before)
        keep = _keep(self.options, attached, self.terminal, self.name)
        if keep:  # the disk is unmounted: a later shell logs in with the key and mounts it
            self.save(stage, before)
        report = self._report(attached, tuple(changes), complete, kept=keep)
        self.workflow.journal.note(report.run_id, summary(report))  # kept once it is left
        return report

    def _report(
        self, attached: _Attached, changes: tuple[Change, ...], complete: bool, *, kept: bool
    ) -> ShellReport:
        return ShellReport(
            server=self.rescued.server,
            run_id=self.rescued.run_id,
            exit_status=attached.exit_status,
            changes=changes,
            changes_complete=complete,
            kept_in_rescue=kept,
            shell_running=attached.running,
            mount=self.mount,
            signal=attached.signal,
        )

    def _attach(self, stage: chroot.ShellStage) -> _Attached:
        request = self.terminal.request() if self.options.program == "login" else None
        lost = 0
        while True:
            command = stage.attach_command(self.multiplexed)
            channel = self.host.open_channel(command, terminal=request)
            try:
                end = self.terminal.attach(channel, self._sync)
            finally:
                channel.close()
            if end.signal is not None:  # a closed terminal leaves a tmux shell to reattach to
                running = self.multiplexed and end.signal == signal.SIGHUP
                return _Attached(None, None, running, end.signal)
            if end.choice is not None:
                running = self.multiplexed and end.choice is LeaveChoice.KEEP_RESCUED
                return _Attached(None, end.choice, running)
            if not end.dropped:
                status = end.exit_status
                if self.multiplexed:
                    status = chroot.exit_status(self.host, stage)
                return _Attached(status, None, False)
            if not self.multiplexed:
                self.workflow.events.note(
                    "the connection was cut and the rescue has no tmux: the shell ended with it"
                )
                return _Attached(None, None, False)
            lost += 1
            if lost > REATTACH_ATTEMPTS or not self._log_in_again():
                raise self._detached()
            if not chroot.session_alive(self.host, stage):
                return _Attached(chroot.exit_status(self.host, stage), None, False)
            self.terminal.show(["[cloudrescue] the connection was cut: reattached to the shell"])

    def _sync(self) -> str:
        result = self.host.run(["sync"], check=False, timeout=SYNC_TIMEOUT)
        return "synced the disk" if result.ok else f"sync failed: {result.stderr.strip()}"

    def _log_in_again(self) -> bool:
        try:
            self.rescued.host.reconnect()
        except CloudRescueError as error:
            self.workflow.events.note(f"could not log in to the rescue again: {error.message}")
            return False
        return True

    def _detached(self) -> ShellDetachedError:
        return ShellDetachedError(
            f"the connection to the rescue of {self.name} was lost: the shell goes on there, "
            "and the instance stays in rescue with its disk mounted",
            hint=f"`cloudrescue shell {self.name}` reattaches; "
            f"`cloudrescue unrescue {self.name}` ends it",
        )

    # -- leaving ------------------------------------------------------------------------------

    def take_down(self, stage: chroot.ShellStage, before: Listing) -> tuple[list[Change], bool]:
        """End the shell, compare the listings, unmount (``DiskStillMountedError`` keeps the
        instance in rescue); what changed, and whether the listings were complete."""
        try:
            chroot.finish(self.host, stage)
        except CloudRescueError:  # cut: once more over a new connection
            if self._log_in_again():
                chroot.finish(self.host, stage)
        changes: list[Change] = []
        complete = before.complete
        if self.disks.undo_steps():
            self.workflow.events.stage("syncing and unmounting the disk")
        if self.disks.undo_steps() and before.entries:
            after = take_listing(self.host, stage.root)
            changes, complete = compare(before, after), complete and after.complete
        unmount_disks(self.disks, self.name, self.workflow.events, self.rescued.host.reconnect)
        return changes, complete


def _keep(options: ShellOptions, attached: _Attached, terminal: ShellTerminal, name: str) -> bool:
    if attached.signal is not None:
        return False  # terminated: clean up as after Ctrl-C
    if attached.choice is not None:
        return attached.choice is LeaveChoice.KEEP_RESCUED
    if options.leave != "ask":
        return options.leave == "keep"
    return not terminal.ask_unrescue(name)


def summary(report: ShellReport) -> str:
    """One line on what the shell changed (for the journal and the user)."""
    changes = report.changes
    cut = "" if report.changes_complete else " (the listing was cut short)"
    if not changes:
        return f"the shell changed no watched guest file{cut}"
    counts = {kind: sum(1 for c in changes if c.kind == kind) for kind in CHANGE_KINDS}
    text = ", ".join(f"{count} {kind}" for kind, count in counts.items() if count)
    shown = ", ".join(change.path for change in changes[:5])
    return f"the shell: {text}: {shown}{' ...' if len(changes) > 5 else ''}{cut}"


def _held_note(report: ShellReport) -> str:
    name = report.server.name
    if report.shell_running:
        return (
            f"shell left running in tmux, disk mounted: `cloudrescue shell {name}` reattaches, "
            f"`cloudrescue unrescue {name}` ends it"
        )
    return f"kept in rescue by `cloudrescue shell`; {summary(report)}"


def open_shell(
    workflow: RescueWorkflow,
    server: ServerInfo,
    options: ShellOptions,
    terminal: ShellTerminal,
    *,
    open_disks: ShellDiskOpener = open_disk_session,
) -> ShellReport:
    """Open a root shell on ``server``'s disk through rescue mode (or reattach to the one a
    kept shell left); always take it down, unmount and unrescue, unless kept on purpose."""
    held = held_shell(workflow, server)
    if held is not None:
        return _take_over(workflow, held, options, terminal, open_disks)
    reports: list[ShellReport] = []
    state_dir = workflow.journal.path.parent
    with workflow.session(
        server, command=SHELL_COMMAND, hold=lambda: reports[0].kept_in_rescue
    ) as rescued:
        shell = _Shell(
            workflow, rescued, open_disks(rescued.host, options.disk.mountpoint), terminal, options
        )
        stage = shell.mount_disk()
        try:
            before = take_listing(rescued.host, stage.root)
            key = saved.new_login_key(state_dir, rescued.run_id)
            authorize_rescue_keys(rescued.host, [key])
            shell.save(stage, before)
        except BaseException:
            shell.take_down(stage, Listing({}, complete=False))
            raise
        reports.append(shell.run(stage, before, reattach=False))
    return _closed(workflow, reports[0])


def _closed(workflow: RescueWorkflow, report: ShellReport) -> ShellReport:
    state_dir = workflow.journal.path.parent
    if report.kept_in_rescue:
        workflow.journal.update(report.run_id, "held", note=_held_note(report))
    else:
        saved.forget(state_dir, report.run_id)
    return report


def _take_over(
    workflow: RescueWorkflow,
    held: tuple[JournalEntry, saved.SavedShell],
    options: ShellOptions,
    terminal: ShellTerminal,
    open_disks: ShellDiskOpener,
) -> ShellReport:
    entry, record = held
    state_dir = workflow.journal.path.parent
    key = saved.login_key(state_dir, entry.run_id)
    rescued = workflow.reenter(
        entry, address=record.address, fingerprint=record.fingerprint, key=key
    )
    try:
        disks = open_disks(rescued.host, record.root)
        shell = _Shell(workflow, rescued, disks, terminal, options)
        if record.undo:
            disks.adopt(record.undo)
            stage = chroot.ShellStage(record.stage, record.root, record.chroot)
            alive = chroot.session_alive(rescued.host, stage)
            what = "reattaching to the shell" if alive else "a new shell on the disk mounted"
            terminal.show([f"[cloudrescue] {what} of run {entry.run_id} on {record.root}"])
            report = shell.run(stage, record.before, reattach=alive)
        else:
            stage = shell.mount_disk()
            before = take_listing(rescued.host, stage.root)
            shell.save(stage, before)
            report = shell.run(stage, before, reattach=False)
    except ShellDetachedError:
        rescued.host.close()
        raise
    except BaseException:
        rescued.host.close()
        workflow.leave(rescued.server, entry.run_id)
        saved.forget(state_dir, entry.run_id)
        raise
    rescued.host.close()
    if not report.kept_in_rescue:
        workflow.leave(rescued.server, entry.run_id)
    return _closed(workflow, report)


def end_held_shell(
    workflow: RescueWorkflow, server: ServerInfo, *, open_disks: ShellDiskOpener = open_disk_session
) -> str | None:
    """Take down the shell a run left on ``server`` (before ``unrescue``): end it, unmount
    the disk; what was done, or ``None`` when no shell was left there."""
    held = held_shell(workflow, server)
    if held is None:
        return None
    entry, record = held
    state_dir = workflow.journal.path.parent
    if record.undo:
        key = saved.login_key(state_dir, entry.run_id)
        rescued = workflow.reenter(
            entry, address=record.address, fingerprint=record.fingerprint, key=key
        )
        try:
            chroot.finish(rescued.host, chroot.ShellStage(record.stage, record.root, record.chroot))
            disks = open_disks(rescued.host, record.root)
            disks.adopt(record.undo)
            unmount_disks(disks, server.name, workflow.events, rescued.host.reconnect)
        finally:
            rescued.host.close()
    saved.forget(state_dir, entry.run_id)
    return f"ended the shell of run {entry.run_id} and unmounted the disk" if record.undo else None
