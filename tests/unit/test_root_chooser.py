"""Choosing among several roots on a terminal (the CLI side of `DiskSession.choose_root`)."""

from __future__ import annotations

import io

from cloudrescue.cli.environment import Environment
from cloudrescue.cli.prompts import root_chooser
from cloudrescue.cli.render import RichEvents
from cloudrescue.disks import RootFilesystem
from cloudrescue.disks.discovery import Filesystem


def terminal(typed: str, *, stdin_isatty: bool = True) -> Environment:
    """What the user types, on a stdin the environment says is a terminal, and a quiet one
    (no progress display) whose stderr a test reads."""
    return Environment(
        stdin=io.StringIO(typed),
        stdout=io.StringIO(),
        stderr=io.StringIO(),
        stdin_isatty=stdin_isatty,
        stderr_isatty=False,
        verbosity=-1,
    )


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


def test_no_question_with_yes_or_without_a_terminal() -> None:
    env = terminal("")
    assert root_chooser(env, RichEvents(env), yes=True) is None
    env = terminal("", stdin_isatty=False)
    assert root_chooser(env, RichEvents(env), yes=False) is None


def test_asks_until_a_listed_number_is_given() -> None:
    env = terminal("7\n2\n")
    ask = root_chooser(env, RichEvents(env), yes=False)
    assert ask is not None
    assert ask(roots()).os_id == "rocky"
    shown = env.stderr.getvalue()  # type: ignore[attr-defined]
    assert "1) /dev/vdb1" in shown and "2) /dev/vdc1" in shown
    assert "choose a number from 1 to 2" in shown
