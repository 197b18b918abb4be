"""Rendering of progress and results for humans (Rich, on stderr).

Messages from the core carry text the guest controls (os-release names, labels, file names,
command output): everything shown goes through ``printable`` (control characters made
visible, so no escape sequence reaches the terminal) and, where Rich reads markup, ``safe``.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from types import TracebackType

from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from cloudrescue.cli.environment import Environment
from cloudrescue.cloud.base import ServerInfo


def _visible(char: str) -> str:
    if unicodedata.category(char) not in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
        return char
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` with control and format characters shown as ``\\xNN`` (newlines, tabs kept:
    for what has lines, a diff or a command's output)."""
    if text.isprintable():
        return text
    return "".join(char if char in "\n\t" else _visible(char) for char in text)


def one_line(text: str) -> str:
    """``text`` as one line: every control and format character shown, newlines too, so that
    a name the guest chose cannot start a line of cloudrescue's own output."""
    return text if text.isprintable() else "".join(_visible(char) for char in text)


def safe(text: str) -> str:
    """``text`` ready for a Rich markup string: one line, and its brackets escaped."""
    return escape(one_line(text))


class RichEvents:
    """``Events`` shown on ``env.err``: a line per stage, a spinner with the current step and
    the instance's state; ``--quiet`` shows nothing, ``-v`` every detail as a line too."""

    def __init__(self, env: Environment) -> None:
        self._env = env
        self._console = env.err
        self._quiet = env.quiet
        self._verbose = env.verbosity >= 1
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TextColumn("[dim]{task.fields[state]}"),
            TimeElapsedColumn(),
            console=self._console,
            transient=True,
        )
        self._task: TaskID | None = None

    def __enter__(self) -> RichEvents:
        if not self._quiet:
            self._progress.start()
        self._env.pause_display = self.paused
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._progress.stop()
        self._env.pause_display = nullcontext

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Hide the spinner while the user is asked something."""
        self._progress.stop()
        try:
            yield
        finally:
            if not self._quiet:
                self._progress.start()

    def stage(self, message: str) -> None:
        if self._quiet:
            return
        self._console.print(f"[bold]→[/] {safe(message)}")
        if self._task is None:
            self._task = self._progress.add_task(safe(message), state="")
        else:
            self._progress.update(self._task, description=safe(message), state="")

    def poll(self, server: ServerInfo, elapsed: float) -> None:
        if self._task is not None:
            task = f"/{server.task_state}" if server.task_state else ""
            self._progress.update(self._task, state=f"{server.status}{task}")

    def note(self, message: str) -> None:
        if not self._quiet:
            self._console.print(f"  [dim]{safe(message)}[/]")

    def detail(self, message: str) -> None:
        if self._verbose:
            self._console.print(f"    [dim]{safe(message)}[/]")
        if self._task is not None:
            self._progress.update(self._task, state=safe(message))
