"""Guest-controlled text on the terminal: markup is shown, never parsed; escapes never pass."""

from __future__ import annotations

import io

from rich.console import Console

from cloudrescue.cli.render import RichEvents, printable, safe

HOSTILE = "Debian [/] [bold red]12[/bold red] \x1b]0;owned\x07\x1b[2J\u202eevil\r"


def test_printable_shows_control_characters_and_keeps_lines() -> None:
    assert printable("a\nb\tc") == "a\nb\tc"
    assert printable("\x1b[31m\x07") == "\\x1b[31m\\x07"
    assert printable("\u202e\u2028") == "\\u202e\\u2028"
    assert printable("é ü 中") == "é ü 中"


def test_events_print_guest_text_as_text() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=400, color_system=None)
    with RichEvents(console) as events:
        events.stage(f"mounted /dev/vdb1 ({HOSTILE}) on /mnt")
        events.note(HOSTILE)
        events.detail(HOSTILE)
    shown = buffer.getvalue()
    assert "[/] [bold red]12[/bold red]" in shown
    assert "\x1b]" not in shown and "\x07" not in shown and "\u202e" not in shown
    assert "\\x1b]0;owned\\x07" in shown


def test_safe_escapes_markup_for_rich() -> None:
    buffer = io.StringIO()
    Console(file=buffer, color_system=None).print(f"[bold]{safe(HOSTILE)}[/]")
    assert "[bold red]12[/bold red]" in buffer.getvalue()
