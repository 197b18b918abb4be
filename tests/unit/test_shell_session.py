"""``open_shell`` without root: fake cloud, this machine as the rescue, a guest tree, a terminal
that plays the user's part, and a rescue whose tmux is a set of session names.

What the user does in the shell is a scripted ``Turn``: it may change the guest tree, end the
shell (its status file, as the start script writes it), leave with an escape, or drop.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cloudrescue.errors import CloudRescueError
from cloudrescue.remote.base import CommandResult, TerminalRequest
from cloudrescue.remote.ssh import Endpoint
from cloudrescue.shell import saved
from cloudrescue.shell.session import (
    ShellDetachedError,
    ShellOptions,
    ShellReport,
    end_held_shell,
    open_shell,
)
from cloudrescue.shell.terminal import LeaveChoice, SessionEnd
from tests.fakes import (
    FakeChannel,
    RescueHost,
)

from .test_runner import Run


class TmuxRescue(RescueHost):
    """The fake rescue with a fake tmux: sessions are names; `sync` and `rm` of the stage
    are answered here, everything else (the listing's `find`) runs for real."""

    sessions: set[str]
    has_tmux = True

    def __init__(self, endpoint: Endpoint, root: Path, fingerprint: str) -> None:
        super().__init__(endpoint, root, fingerprint)
        self.sessions = SESSIONS

    def run(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes | None = None,
        check: bool = True,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
    ) -> CommandResult:
        self._at("/")
        if list(argv[:2]) == ["sh", "-c"] and argv[2] == "command -v tmux":
            return CommandResult(tuple(argv), 0 if TmuxRescue.has_tmux else 1, "", "")
        if argv[0] == "tmux":
            name = argv[-1]
            alive = name in self.sessions
            if "kill-session" in argv:
                self.sessions.discard(name)
            return CommandResult(tuple(argv), 0 if alive else 1, "", "")
        if argv[0] in ("sync", "rm"):
            return CommandResult(tuple(argv), 0, "", "")
        return super().run(argv, stdin=stdin, check=check, timeout=timeout, env=env)

    def open_channel(self, command: str, *, terminal: TerminalRequest | None = None) -> Any:
        channel = super().open_channel(command, terminal=terminal)
        if "new-session" in command:
            self.sessions.add(command.split(" -s ")[1].split()[0])
        return channel


SESSIONS: set[str] = set()
Turn = Callable[["Shell", FakeChannel], SessionEnd]


@dataclass
class FakeTerminal:
    """Plays the user: each attach takes the next ``Turn``."""

    shell: Shell
    turns: list[Turn]
    unrescue: bool = True
    shown: list[str] = field(default_factory=list)
    asked: list[str] = field(default_factory=list)
    synced: list[str] = field(default_factory=list)

    def request(self) -> TerminalRequest | None:
        return TerminalRequest("xterm", 100, 30)

    def attach(self, channel: Any, sync: Callable[[], str]) -> SessionEnd:
        self.synced.append(sync())
        return self.turns.pop(0)(self.shell, channel)

    def show(self, lines: Sequence[str]) -> None:
        self.shown += lines

    def ask_unrescue(self, name: str) -> bool:
        self.asked.append(name)
        return self.unrescue


class Shell(Run):
    """``Run``'s fake cloud and guest tree, its rescue with a fake tmux."""

    def __init__(self, tmp_path: Path) -> None:
        SESSIONS.clear()
        TmuxRescue.has_tmux = True
        super().__init__(tmp_path, make_host=TmuxRescue)
        for directory in ("root", "run"):  # a rescue system's own
            (self.rescue_root / directory).mkdir()
        self.state = self.journal.path.parent
        self.connect = self.workflow_connect

    def open(self, *turns: Turn, unrescue: bool = True, **options: Any) -> ShellReport:
        self.terminal = FakeTerminal(self, list(turns), unrescue)
        return open_shell(
            self.workflow,
            self.server,
            ShellOptions(**options),
            self.terminal,
            open_disks=lambda host, mountpoint: self.disks,
        )

    def status_file(self) -> Path:
        [stage] = (self.rescue_root / "run/cloudrescue-shell").iterdir()
        return stage / "status"

    @property
    def status(self) -> str:
        return self.cloud.servers[self.server.id].info.status

    def open_runs(self) -> list[str]:
        return [entry.state for entry in self.journal.entries()]


def exits(status: int, edit: Callable[[Path], None] = lambda tree: None) -> Turn:
    """The user changes the tree, then the shell exits with ``status`` (its tmux session ends)."""

    def turn(shell: Shell, channel: FakeChannel) -> SessionEnd:
        edit(shell.tree)
        shell.status_file().write_text(f"{status}\n")
        SESSIONS.clear()
        return SessionEnd(exit_status=0, choice=None, dropped=False)

    return turn


def leaves(choice: LeaveChoice) -> Turn:
    return lambda shell, channel: SessionEnd(None, choice, dropped=False)


def drops(shell: Shell, channel: FakeChannel) -> SessionEnd:
    shell.connect.hosts[-1].cut = True
    return SessionEnd(None, None, dropped=True)


@pytest.fixture
def shell(tmp_path: Path) -> Shell:
    return Shell(tmp_path)


def test_a_shell_that_edits_files_reports_them_then_unrescues(shell: Shell) -> None:
    def edit(tree: Path) -> None:
        (tree / "etc/hostname").write_text("edited\n")
        (tree / "etc/new.conf").write_text("x\n")

    report = shell.open(exits(3, edit))
    assert report.exit_status == 3 and not report.kept_in_rescue
    assert {(c.kind, c.path) for c in report.changes} == {
        ("changed", "/etc/hostname"),
        ("created", "/etc/new.conf"),
    }
    assert shell.status == "ACTIVE" and shell.open_runs() == []
    [entry] = shell.journal.entries(include_restored=True)
    assert entry.note == "the shell: 1 created, 1 changed: /etc/hostname, /etc/new.conf"
    assert shell.disks.mounted == [] and shell.terminal.asked == ["web-1"]
    [channel] = shell.connect.hosts[0].channels
    assert "new-session -A -s cloudrescue-" in channel.command and channel.closed
    assert channel.terminal == TerminalRequest("xterm", 100, 30)
    assert any("cloudrescue shell on web-1" in line for line in shell.terminal.shown)
    assert shell.terminal.synced == ["synced the disk"]
    assert list((shell.state / "shells").iterdir()) == []  # the record and key are gone


def test_no_tmux_runs_the_shell_on_the_channel_and_takes_its_status(shell: Shell) -> None:
    TmuxRescue.has_tmux = False

    def plain_exit(shell: Shell, channel: FakeChannel) -> SessionEnd:
        assert channel.command.startswith("sh /run/cloudrescue-shell/")
        return SessionEnd(exit_status=5, choice=None, dropped=False)

    assert shell.open(plain_exit, leave="unrescue").exit_status == 5
    assert shell.terminal.asked == [] and shell.status == "ACTIVE"


def test_kept_then_reattached_by_a_second_shell_then_unrescued(shell: Shell) -> None:
    kept = shell.open(leaves(LeaveChoice.KEEP_RESCUED))
    assert kept.kept_in_rescue and kept.shell_running and kept.changes == ()
    assert shell.status == "RESCUE" and shell.open_runs() == ["held"]
    assert shell.disks.mounted  # the shell goes on: its disk stays mounted
    record = saved.load(shell.state, kept.run_id)
    assert record is not None and record.undo and record.before.entries

    def touch(tree: Path) -> None:
        (tree / "etc/touched").write_text("")

    again = shell.open(exits(0, touch))
    assert any("reattaching to the shell" in line for line in shell.terminal.shown)
    assert "new-session" in shell.connect.hosts[-1].channels[0].command
    assert again.run_id == kept.run_id and ("created", "/etc/touched") in {
        (c.kind, c.path) for c in again.changes
    }
    assert shell.status == "ACTIVE" and shell.open_runs() == [] and shell.disks.mounted == []
    assert saved.load(shell.state, kept.run_id) is None


def test_kept_with_the_disk_unmounted_mounts_it_again_next_time(shell: Shell) -> None:
    first = shell.open(exits(0), unrescue=False)
    assert first.kept_in_rescue and not first.shell_running and shell.disks.mounted == []
    assert shell.open_runs() == ["held"]
    shell.open(exits(0), leave="unrescue")
    assert shell.status == "ACTIVE" and shell.open_runs() == []


def test_unrescue_ends_a_shell_left_running(shell: Shell) -> None:
    kept = shell.open(leaves(LeaveChoice.KEEP_RESCUED))
    done = end_held_shell(shell.workflow, shell.server, open_disks=lambda host, at: shell.disks)
    assert done == f"ended the shell of run {kept.run_id} and unmounted the disk"
    assert shell.disks.mounted == [] and set() == SESSIONS
    shell.workflow.unrescue(shell.cloud.get_server(shell.server.id))
    assert shell.status == "ACTIVE" and shell.open_runs() == []


def test_a_cut_connection_is_reattached_to_the_same_shell(shell: Shell) -> None:
    report = shell.open(drops, exits(0), leave="unrescue")
    assert "[cloudrescue] the connection was cut: reattached to the shell" in shell.terminal.shown
    assert len(shell.connect.hosts) == 2 and report.exit_status == 0
    assert shell.status == "ACTIVE"


def test_a_connection_that_cannot_be_made_again_leaves_the_shell_held(shell: Shell) -> None:
    def drop_for_good(shell: Shell, channel: FakeChannel) -> SessionEnd:
        shell.connect.refuse = 99
        return drops(shell, channel)

    with pytest.raises(ShellDetachedError) as raised:
        shell.open(drop_for_good)
    assert "`cloudrescue shell web-1` reattaches" in (raised.value.hint or "")
    assert shell.status == "RESCUE" and shell.open_runs() == ["held"]
    assert shell.disks.mounted  # not unmounted under a running shell


def test_sigterm_takes_the_shell_down_and_unrescues(shell: Shell) -> None:
    def terminated(shell: Shell, channel: FakeChannel) -> SessionEnd:
        return SessionEnd(None, None, dropped=False, signal=signal.SIGTERM)

    report = shell.open(terminated)
    assert report.signal == signal.SIGTERM and not report.kept_in_rescue
    assert shell.status == "ACTIVE" and set() == SESSIONS and shell.disks.mounted == []


def test_a_closed_terminal_leaves_the_tmux_shell_running_and_held(shell: Shell) -> None:
    def hangup(shell: Shell, channel: FakeChannel) -> SessionEnd:
        return SessionEnd(None, None, dropped=False, signal=signal.SIGHUP)

    report = shell.open(hangup)
    assert report.signal == signal.SIGHUP and report.shell_running and report.kept_in_rescue
    assert shell.status == "RESCUE" and shell.open_runs() == ["held"] and shell.disks.mounted


def test_a_failing_step_on_the_way_in_unmounts_and_unrescues(shell: Shell) -> None:
    def broken(shell: Shell, channel: FakeChannel) -> SessionEnd:
        raise CloudRescueError("the terminal broke")

    with pytest.raises(CloudRescueError, match="the terminal broke"):
        shell.open(broken)
    assert shell.status == "ACTIVE" and shell.disks.mounted == [] and shell.open_runs() == []


def test_the_shell_record_has_the_documented_fields(shell: Shell) -> None:
    from cloudrescue.cli.records import SHELL
    from cloudrescue.cli.shell import shell_record

    record = shell_record(shell.open(exits(0, lambda tree: (tree / "etc/x").write_text(""))))
    assert tuple(record) == SHELL.names
    [change] = record["changes"]
    assert (change["change"], change["path"]) == ("created", "/etc/x")
    assert change["detail"].startswith("f mode ")
