"""How a fleet run is shown while it runs, on stderr: a live table on a terminal (the counts on
top, then each instance started: its stage, elapsed time, result), one line per event
otherwise (a log a pipe or CI keeps), nothing with ``--quiet``."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from types import TracebackType

from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from cloudrescue.cli.environment import Environment
from cloudrescue.cli.render import safe
from cloudrescue.fleet.runner import Outcome

RESULT_STYLE = {
    "changed": "yellow",
    "ok": "green",
    "skipped": "dim",
    "failed": "bold red",
    "interrupted": "magenta",
    "not-started": "dim",
}
LIVE_ROWS = 30  # a terminal shows the instances in flight and the latest finished, no more


class FleetView:
    """The ``FleetObserver`` of the CLI (thread-safe: workers call it)."""

    def __init__(self, env: Environment, total: int) -> None:
        self._env = env
        self._total = total
        self._lock = threading.Lock()
        self._rows: dict[str, tuple[Outcome, float]] = {}  # server id -> (outcome, started)
        self._finished: list[Outcome] = []
        self._live: Live | None = None
        if not env.quiet and env.stderr_isatty:
            self._live = Live(
                console=env.err, refresh_per_second=4, transient=True, get_renderable=self._render
            )

    def __enter__(self) -> FleetView:
        if self._live is not None:
            self._live.start()
            self._env.pause_display = self._paused
        return self

    @contextmanager
    def _paused(self) -> Iterator[None]:
        """The live table hidden while the user is asked something (``Environment``)."""
        assert self._live is not None
        self._live.stop()
        try:
            yield
        finally:
            self._live.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.stop()
            self._env.pause_display = nullcontext

    def _line(self, text: str) -> None:
        if self._env.quiet:
            return
        if self._live is not None:
            self._live.console.print(text, highlight=False)
        else:
            self._env.err.print(text, highlight=False, soft_wrap=True)

    def _counts(self) -> str:
        counts: dict[str, int] = {}
        for outcome in self._finished:
            counts[outcome.result] = counts.get(outcome.result, 0) + 1
        done = ", ".join(f"{count} {result}" for result, count in sorted(counts.items()))
        running = len(self._rows)
        return (
            f"{len(self._finished)}/{self._total} done"
            f"{f' ({done})' if done else ''}, {running} in flight"
        )

    def _render(self) -> Group:
        with self._lock:
            table = Table("instance", "stage", "elapsed", "result", box=None, pad_edge=False)
            now = time.monotonic()
            shown = [(outcome, started) for outcome, started in self._rows.values()]
            for outcome, started in shown[-LIVE_ROWS:]:
                table.add_row(safe(outcome.server.name), safe(outcome.stage),
                              f"{now - started:.0f} s", "")  # fmt: skip
            room = max(0, LIVE_ROWS - len(shown))
            for outcome in self._finished[-room:] if room else []:
                style = RESULT_STYLE.get(outcome.result, "")
                table.add_row(safe(outcome.server.name), "", f"{outcome.elapsed:.0f} s",
                              Text(outcome.result, style=style))  # fmt: skip
            return Group(Text(self._counts(), style="bold"), table)

    def started(self, outcome: Outcome) -> None:
        with self._lock:
            self._rows[outcome.server.id] = (outcome, time.monotonic())
        if self._live is None:
            self._line(f"{safe(outcome.server.name)}: started (batch {outcome.batch})")

    def stage(self, outcome: Outcome, message: str) -> None:
        if self._live is None:
            self._line(f"{safe(outcome.server.name)}: {safe(message)}")

    def finished(self, outcome: Outcome) -> None:
        with self._lock:
            self._rows.pop(outcome.server.id, None)
            self._finished.append(outcome)
            counts = self._counts()
        error = f": {safe(outcome.error.message)}" if outcome.error is not None else ""
        self._line(
            f"{safe(outcome.server.name)}: {outcome.result} after {outcome.elapsed:.1f} s{error}"
            + ("" if self._live is not None else f" [{counts}]")
        )

    def note(self, message: str) -> None:
        self._line(safe(message))
