"""Choosing among several roots on a terminal (the CLI side of `DiskSession.choose_root`)."""

from __future__ import annotations

import io

import pytest

from cloudrescue.cli.prompts import root_chooser
from cloudrescue.cli.render import RichEvents
from cloudrescue.disks import RootFilesystem
from cloudrescue.disks.discovery import Filesystem


class TerminalInput(io.StringIO):
    """What the user types, on a stdin that says it is a terminal (no pty needed here)."""

    def isatty(self) -> bool:
        return True


def roots() -> list[RootFilesystem]:
    return [
        RootFilesystem(
            Filesystem(f"/dev/vd{letter}1", "ext4", 1 << 30, f"/dev/vd{letter}", ()),
            name,
            os_id,
            True,
        )
        for letter, name, os_id in (
            ("b", "Debian GNU/Linux 12", "debian"),
            ("c", "Rocky 9", "rocky"),
        )
    ]


def test_no_question_with_yes_or_without_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", TerminalInput(""))
    assert root_chooser(RichEvents(quiet=True), yes=True) is None
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert root_chooser(RichEvents(quiet=True), yes=False) is None


def test_asks_until_a_listed_number_is_given(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", TerminalInput("7\n2\n"))
    ask = root_chooser(RichEvents(quiet=True), yes=False)
    assert ask is not None
    assert ask(roots()).os_id == "rocky"
    shown = capsys.readouterr()
    assert "1) /dev/vdb1" in shown.err and "2) /dev/vdc1" in shown.err
    assert "choose a number from 1 to 2" in shown.err
