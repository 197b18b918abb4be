"""Where the command line runs: its streams and what they are (httpie's ``Environment``).

Every command renders through the ``Environment`` the root callback stores, never through
``sys.stdout`` or a global console, so a test can run the CLI in-process as if on a terminal
of 40 columns, or with stdout in a pipe, without patching anything.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from functools import cached_property
from typing import TextIO

from rich.console import Console

PIPE_WIDTH = 100_000  # not a terminal: nothing is wrapped or cut


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


@dataclass
class Environment:
    """The process's streams, whether each is a terminal, its width, and how talkative to be."""

    stdin: TextIO = field(default_factory=lambda: sys.stdin)
    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)
    stdin_isatty: bool | None = None
    stdout_isatty: bool | None = None
    stderr_isatty: bool | None = None
    width: int | None = None  # the terminal's columns (None: ask the terminal)
    verbosity: int = 0  # -1 with --quiet, 1 per -v
    debug: bool = False
    # Hides the live display shown on ``err`` (a progress spinner) while the user is asked
    # something from deep inside a run (a VPS's rescue password): the display sets it.
    pause_display: Callable[[], AbstractContextManager[None]] = field(
        default=nullcontext, repr=False
    )

    def __post_init__(self) -> None:
        if self.stdin_isatty is None:
            self.stdin_isatty = _isatty(self.stdin)
        if self.stdout_isatty is None:
            self.stdout_isatty = _isatty(self.stdout)
        if self.stderr_isatty is None:
            self.stderr_isatty = _isatty(self.stderr)

    def _console(self, stream: TextIO, terminal: bool) -> Console:
        if not terminal:
            return Console(
                file=stream, width=PIPE_WIDTH, highlight=False, color_system=None, soft_wrap=True
            )
        # On a terminal Rich finds its width (or $COLUMNS) unless a test gave one.
        return Console(file=stream, width=self.width, highlight=False, force_terminal=True)

    @cached_property
    def out(self) -> Console:
        """Results: what a script reads (no colour, no wrapping when it is not a terminal)."""
        return self._console(self.stdout, bool(self.stdout_isatty))

    @cached_property
    def err(self) -> Console:
        """Progress, questions, errors."""
        return self._console(self.stderr, bool(self.stderr_isatty))

    @property
    def quiet(self) -> bool:
        """``--quiet``: no progress display, only errors and results."""
        return self.verbosity < 0
