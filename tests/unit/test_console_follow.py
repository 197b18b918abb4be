"""``console log --follow`` (issue 11, console): only new lines, whatever the console lost at
its start between two reads, escaped, until Ctrl-C or the instance's deletion. Driven with
``FakeCloud`` on a ``FakeClock`` whose sleeps change the console, as a guest would."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable

import pytest

from cloudrescue.cli.console import _Printer
from cloudrescue.cloud.console_log import (
    ConsoleTail,
    appended_since,
    follow_console,
    last_lines,
    new_since,
)
from cloudrescue.errors import CloudError, NotFoundError
from tests.fakes import FakeClock, FakeCloud

LOG = "".join(f"[ {n:4d}.000000] boot line {n}\n" for n in range(40))


class Guest:
    """Each sleep of the follower gives the console its next state; none left is Ctrl-C."""

    def __init__(self, cloud: FakeCloud, server_id: str, states: list[str | None]) -> None:
        self.cloud = cloud
        self.server_id = server_id
        self.states = list(states)
        self.sleeps: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if not self.states:
            raise KeyboardInterrupt
        state = self.states.pop(0)
        if state is None:
            del self.cloud.servers[self.server_id]  # deleted
        else:
            self.cloud.servers[self.server_id].console = state


def follow(
    states: list[str | None],
    first: str = LOG,
    *,
    cloud: FakeCloud | None = None,
    lines: int | None = None,
    interval: float = 2.0,
    write: Callable[[str], None] | None = None,
) -> tuple[str, list[str], Guest]:
    """Follow a console that starts as ``first`` then takes ``states``, until Ctrl-C: what
    was written, the notes, the guest."""
    clock = FakeClock()
    cloud = cloud or FakeCloud(clock)
    cloud.clock = clock
    server = cloud.add("web-1")
    cloud.servers[server.id].console = first
    guest = Guest(cloud, server.id, states)
    clock.on_sleep = guest
    written: list[str] = []
    notes: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        follow_console(
            cloud,
            server,
            write or written.append,
            lines=lines,
            interval=interval,
            note=notes.append,
            clock=clock,
            sleep=clock.sleep,
        )
    return "".join(written), notes, guest


def test_only_new_lines_are_printed_once_each() -> None:
    states = [LOG, LOG + "new 1\n", LOG + "new 1\n", LOG + "new 1\nnew 2\n"]
    printed, notes, guest = follow([*states, LOG + "new 1\nnew 2\nlogin: "])
    assert printed == LOG + "new 1\nnew 2\nlogin: "
    assert notes == []
    assert guest.sleeps == [2.0] * 6  # every 2 s, the last one interrupted


def test_a_line_printed_in_two_reads_is_completed_not_repeated() -> None:
    printed, _, _ = follow(
        [LOG + "Debian GNU/Linux 12 web-1 ", LOG + "Debian GNU/Linux 12 web-1 ttyS0\n"]
    )
    assert printed == LOG + "Debian GNU/Linux 12 web-1 ttyS0\n"


def test_crlf_line_ends_split_between_reads() -> None:
    printed, _, _ = follow(
        ["a\r\nb\r", "a\r\nb\r\nc\r\n", "a\r\nb\r\nc\r\nprogress\r50%\r\n"], "a\r\n"
    )
    assert printed == "a\nb\nc\nprogress\r50%\n"  # a lone \r is the guest's: escaped when shown


def test_a_console_that_lost_its_start_goes_on_where_it_was() -> None:
    """Nova keeps the last part of the log only: between two reads its start is cut."""
    more = "".join(f"later {n}\n" for n in range(10))
    cut = (LOG + more).split("\n", 25)[-1]  # 25 lines dropped from the start since
    printed, notes, _ = follow([cut, cut + "last\n"])
    assert printed == LOG + more + "last\n"
    assert notes == []


def test_blank_lines_among_the_last_lines_do_not_lose_the_place() -> None:
    with_blanks = LOG + "\nstep one\n\n   \nstep two\n\n"
    cut = with_blanks.split("\n", 30)[-1]
    printed, notes, _ = follow([cut + "step three\n"], with_blanks)
    assert printed == with_blanks + "step three\n"
    assert notes == []


def test_a_replaced_log_is_printed_whole_after_a_note() -> None:
    printed, notes, _ = follow(["a new boot\n", "a new boot\nlogin:\n"])
    assert printed == LOG + "a new boot\nlogin:\n"
    assert notes == [
        "the console log was cut or replaced since the last read: lines may be missing"
    ]


def test_lines_shows_the_last_lines_first_then_follows() -> None:
    printed, _, _ = follow([LOG + "new\n"], lines=3)
    assert printed == "".join(LOG.splitlines(keepends=True)[-3:]) + "new\n"


def test_the_guests_escape_codes_are_shown_not_obeyed() -> None:
    out = io.StringIO()
    hostile = "\x1b]0;owned\x07\x1b[2J\x9b31mred\u202eevil\x1b[0m\n"
    printer = _Printer(out)
    follow([LOG + hostile, LOG + hostile + "tab\there\n"], write=printer)
    shown = out.getvalue()
    assert shown.endswith("\\x1b]0;owned\\x07\\x1b[2J\\x9b31mred\\u202eevil\\x1b[0m\ntab\there\n")
    assert all(char.isprintable() or char in "\n\t" for char in shown)


def test_ctrl_c_leaves_the_last_line_finished() -> None:
    out = io.StringIO()
    printer = _Printer(out)
    follow([LOG + "login: "], write=printer)  # then Ctrl-C, at the login prompt
    assert out.getvalue() == LOG + "login: "
    printer.end_line()
    printer.end_line()
    assert out.getvalue() == LOG + "login: \n"  # once: the error line starts a line of its own


def test_the_instance_deleted_ends_it_with_one_clear_error() -> None:
    clock = FakeClock()
    cloud = FakeCloud(clock)
    server = cloud.add("web-1")
    guest = Guest(cloud, server.id, [LOG + "reboot: Power down\n", None])
    clock.on_sleep = guest
    written: list[str] = []
    with pytest.raises(NotFoundError) as raised:
        follow_console(cloud, server, written.append, clock=clock, sleep=clock.sleep)
    assert raised.value.message == "instance web-1 was deleted: its console log is gone"
    assert "".join(written).endswith("reboot: Power down\n")


def test_passing_api_errors_are_waited_out_then_given_up() -> None:
    cloud = FakeCloud(FakeClock(), console_errors=2)
    printed, notes, _ = follow([LOG, LOG, LOG + "after the errors\n"], cloud=cloud)
    assert printed == LOG + "after the errors\n"
    assert notes == [
        "console log unavailable (console log of 00000000-0000-4000-8000-000000000000: "
        "HTTP 503: service unavailable): trying again every 2 s"
    ]
    clock = FakeClock()
    down = FakeCloud(clock, console_errors=1000)
    server = down.add("web-1")
    with pytest.raises(CloudError, match=r"HTTP 503: service unavailable\) for 6\d s: stopped"):
        follow_console(down, server, print, clock=clock, sleep=clock.sleep)
    assert 60 <= clock.slept <= 64


class ConsoleGoneForAWhile(FakeCloud):
    """A cloud with no console for a stopped instance (nova: 404 "Guest does not have a
    console available"), the instance still there."""

    def console_output(self, server_id: str, length: int | None = None) -> str:
        if self._server(server_id).info.status == "SHUTOFF":
            raise NotFoundError("console log of web-1: Guest does not have a console available.")
        return super().console_output(server_id, length)


def test_no_console_while_the_instance_is_stopped_is_waited_for() -> None:
    clock = FakeClock()
    cloud = ConsoleGoneForAWhile(clock)
    server = cloud.add("web-1")
    fake = cloud.servers[server.id]
    fake.console = LOG

    def stopped() -> None:
        fake.info = dataclasses.replace(fake.info, status="SHUTOFF")

    def started() -> None:
        fake.info = dataclasses.replace(fake.info, status="ACTIVE")
        fake.console = LOG + "booted again\n"

    steps = [stopped, lambda: None, started]

    def sleep(seconds: float) -> None:
        if not steps:
            raise KeyboardInterrupt
        steps.pop(0)()
        clock.now += seconds

    written: list[str] = []
    notes: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        follow_console(cloud, server, written.append, note=notes.append, clock=clock, sleep=sleep)
    assert "".join(written) == LOG + "booted again\n"
    assert notes == ["no console log now (instance SHUTOFF): trying again every 2 s"]


def test_what_is_new_since_an_earlier_read() -> None:
    assert new_since("a\nb\n", "").text == "a\nb\n"
    assert new_since("a\nb\nc\n", "a\nb\n").text == "c\n"
    assert new_since("a\nb\n", "a\nb\n").text == ""
    baseline = "".join(f"guest line {n}\n" for n in range(40))
    cut = baseline.split("\n", 20)[-1]
    assert appended_since(cut + "new\n", baseline) == "\nnew\n"  # the host-key check's view
    assert new_since(cut + "new\n", baseline).text == "new\n"  # what is printed
    assert new_since("other\n", baseline).gap
    assert new_since("\n\n", "\n").text == "\n"  # only blank lines: the whole read is new
    tail = ConsoleTail()
    assert tail.advance("x\r").text == "x"
    assert tail.advance("x\r\n").text == "\n"


def test_last_lines_as_nova_counts_them() -> None:
    assert last_lines("a\nb\nc\n", 2) == "b\nc\n"
    assert last_lines("a\nb\nc", 2) == "b\nc"
    assert last_lines("a\n", 5) == "a\n"
    assert last_lines("", 3) == ""
    assert last_lines("a\nb\n", None) == "a\nb\n"
