"""Guest-controlled text on the terminal: markup is shown, never parsed; escapes never pass."""

from __future__ import annotations

import io
import time
from contextlib import nullcontext

import pytest
from rich.console import Console

from cloudrescue.cli.environment import Environment
from cloudrescue.cli.render import RichEvents, one_line, printable, safe

HOSTILE = "Debian [/] [bold red]12[/bold red] \x1b]0;owned\x07\x1b[2J\u202eevil\r"


def test_one_line_shows_newlines_too() -> None:
    assert one_line("evil\nFORGED: ok\r\t") == "evil\\x0aFORGED: ok\\x0d\\x09"
    assert safe("a\n[b]") == "a\\x0a\\[b]"


def test_printable_shows_control_characters_and_keeps_lines() -> None:
    assert printable("a\nb\tc") == "a\nb\tc"
    assert printable("\x1b[31m\x07") == "\\x1b[31m\\x07"
    assert printable("\u202e\u2028") == "\\u202e\\u2028"
    assert printable("é ü 中") == "é ü 中"


def events_shown(verbosity: int, *, terminal: bool = True) -> str:
    """What a run's stages, notes and details print on stderr (a terminal's, or a log's)."""
    shown = io.StringIO()
    env = Environment(
        stdin=io.StringIO(),
        stdout=io.StringIO(),
        stderr=shown,
        width=400,
        stderr_isatty=terminal,
        verbosity=verbosity,
    )
    with RichEvents(env) as events:
        events.stage(f"mounted /dev/vdb1 ({HOSTILE}) on /mnt")
        events.note(HOSTILE)
        events.detail(f"detail {HOSTILE}")
    return shown.getvalue()


def test_events_print_guest_text_as_text() -> None:
    shown = events_shown(verbosity=1)
    assert "[/] [bold red]12[/bold red]" in shown
    assert "\x1b]" not in shown and "\x07" not in shown and "\u202e" not in shown
    assert "\\x1b]0;owned\\x07" in shown


@pytest.mark.parametrize(
    ("verbosity", "stages", "details"), [(-1, False, False), (0, True, False), (1, True, True)]
)
def test_quiet_and_verbose_decide_what_is_shown(
    verbosity: int, stages: bool, details: bool
) -> None:
    shown = events_shown(verbosity, terminal=False)  # no spinner frame to read past
    assert ("mounted /dev/vdb1" in shown) is stages
    assert ("detail Debian" in shown) is details


def test_safe_escapes_markup_for_rich() -> None:
    buffer = io.StringIO()
    Console(file=buffer, color_system=None).print(f"[bold]{safe(HOSTILE)}[/]")
    assert "[bold red]12[/bold red]" in buffer.getvalue()


def test_a_question_from_inside_a_run_hides_the_spinner() -> None:
    """The display lends ``Environment.pause_display`` while it is shown (a VPS's rescue
    password is asked for deep inside the backend): no spinner frame is drawn over the
    question, and nothing is lent once the run is over."""
    shown = io.StringIO()
    env = Environment(stdin=io.StringIO(), stdout=io.StringIO(), stderr=shown,
                      width=80, stderr_isatty=True)  # fmt: skip

    def drawn_within(seconds: float) -> str:
        start = len(shown.getvalue())
        time.sleep(seconds)
        return shown.getvalue()[start:]

    with RichEvents(env) as events:
        events.stage("rebooting vps-1 into rescue")
        assert drawn_within(0.3)  # the spinner redraws itself...
        with env.pause_display():
            assert drawn_within(0.3) == ""  # ...but not while the user is asked
        assert drawn_within(0.3)
    assert env.pause_display is nullcontext
