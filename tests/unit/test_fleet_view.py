"""What a fleet run shows on stderr (cloudrescue/cli/fleet_view.py): a line per event on a
pipe, a live table on a terminal, nothing with --quiet; guest-controlled text escaped."""

from __future__ import annotations

import io
import time
from contextlib import nullcontext

from cloudrescue.cli.environment import Environment
from cloudrescue.cli.fleet_view import FleetView
from cloudrescue.cloud.base import ServerInfo
from cloudrescue.errors import ConnectionFailedError
from cloudrescue.fleet.runner import Outcome


def run_through(view: FleetView) -> None:
    web = Outcome(ServerInfo(id="1", name="web-1", status="ACTIVE", task_state=None), batch=1)
    evil = Outcome(ServerInfo(id="2", name="db\x1b[2J\nx", status="ACTIVE", task_state=None), 1)
    with view:
        view.note("fleet run f1: 2 instance(s)")
        for outcome in (web, evil):
            view.started(outcome)
            view.stage(outcome, "asking the cloud to rescue")
        web.result, web.elapsed = "changed", 12.0
        view.finished(web)
        evil.result, evil.elapsed = "failed", 3.0
        evil.error = ConnectionFailedError("sshd never answered")
        view.finished(evil)


def test_a_pipe_gets_one_line_per_event() -> None:
    stderr = io.StringIO()
    run_through(FleetView(Environment(stderr=stderr, stderr_isatty=False), 2))
    lines = stderr.getvalue().splitlines()
    assert lines[0] == "fleet run f1: 2 instance(s)"
    assert "web-1: started (batch 1)" in lines
    assert "web-1: asking the cloud to rescue" in lines
    assert "web-1: changed after 12.0 s [1/2 done (1 changed), 1 in flight]" in lines
    assert lines[-1].endswith(": failed after 3.0 s: sshd never answered [2/2 done (1 changed, "
                              "1 failed), 0 in flight]")  # fmt: skip
    assert "\x1b" not in stderr.getvalue() and len(lines) == 7  # the name's newline escaped


def test_quiet_shows_nothing() -> None:
    stderr = io.StringIO()
    run_through(FleetView(Environment(stderr=stderr, stderr_isatty=False, verbosity=-1), 2))
    assert stderr.getvalue() == ""


def test_a_terminal_gets_the_finished_lines_and_a_live_table() -> None:
    stderr = io.StringIO()
    env = Environment(stderr=stderr, stderr_isatty=True, width=100)
    run_through(FleetView(env, 2))
    shown = stderr.getvalue()
    assert "web-1: changed after 12.0 s" in shown and "started (batch" not in shown
    assert "2/2 done" in shown or "in flight" in shown  # the live table's counts line


def test_the_live_table_is_hidden_while_the_user_is_asked_something() -> None:
    stderr = io.StringIO()
    env = Environment(stderr=stderr, stderr_isatty=True, width=100)
    with FleetView(env, 2):
        with env.pause_display():
            start = len(stderr.getvalue())
            time.sleep(0.6)  # the table redraws 4 times a second when shown
            assert stderr.getvalue()[start:].replace("\x1b[?25h", "") == ""
        start = len(stderr.getvalue())
        time.sleep(0.6)
        assert stderr.getvalue()[start:]  # shown again
    assert env.pause_display is nullcontext
