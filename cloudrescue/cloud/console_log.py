"""An instance's console log: what is new since an earlier read, and following it.

Nova gives the console log whole (``os-getConsoleOutput``), at most its last bytes: between two
reads it grows at the end and may lose its start. What was printed after a read is found by
looking for the end of that read (its last few lines) in the next one. The host-key check of a
rescue (``remote/hostkeys.py``) and ``cloudrescue console log --follow`` both count on it.

The text is the guest's: this module hands it on as it is (line ends normalised), and the
caller escapes it before it reaches a terminal.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

from cloudrescue.cloud.base import CloudBackend, ServerInfo
from cloudrescue.errors import CloudError, NotFoundError

ANCHOR_LINES = 5
FOLLOW_INTERVAL = 2.0  # seconds between two reads of a followed console
FOLLOW_PATIENCE = 60.0  # seconds of failing reads in a row before following gives up
GONE_STATUSES = frozenset({"DELETED", "SOFT_DELETED"})


def _anchor(baseline: str) -> tuple[str, str]:
    """The end of ``baseline`` to look for in a later read: its text from the start of its
    ``ANCHOR_LINES``-th last non-blank line to the end of its last one, blank lines between
    included (so the anchor is a piece of the log as it was printed); and what followed the
    anchor in ``baseline`` (its last newline, trailing blank lines). ``("", baseline)`` when
    ``baseline`` has no line with text."""
    starts: list[tuple[int, str]] = []
    position = 0
    for line in baseline.split("\n"):
        if line.strip():
            starts.append((position, line))
        position += len(line) + 1
    if not starts:
        return "", baseline
    first = starts[-ANCHOR_LINES:][0][0]
    last, line = starts[-1]
    end = last + len(line)
    return baseline[first:end], baseline[end:]


def appended_since(console: str, baseline: str) -> str:
    """What the console printed after ``baseline`` (an earlier read of it) was taken.

    Consoles are read whole and grow at the end; when the start was cut off since, the
    baseline's last lines are looked for, and what follows them is returned (starting with the
    newline that ended the baseline's last line); when they are gone too, the log was replaced
    and all of it is new.
    """
    if not baseline or console.startswith(baseline):
        return console[len(baseline) :]
    anchor, _ = _anchor(baseline)
    found = console.rfind(anchor) if anchor else -1
    return console[found + len(anchor) :] if found >= 0 else console


@dataclass(frozen=True)
class NewText:
    """What a read of the console adds to an earlier one."""

    text: str  # exactly what was not shown yet
    gap: bool = False  # the earlier read's end is gone: lines may be missing before ``text``


def new_since(console: str, shown: str) -> NewText:
    """What ``console`` adds to ``shown`` (an earlier read of it, all of it shown already).

    As ``appended_since``, without what ``shown`` itself had after its last lines (the newline
    and blank lines already printed), so that nothing is printed twice.
    """
    if not shown or console.startswith(shown):
        return NewText(console[len(shown) :])
    anchor, tail = _anchor(shown)
    found = console.rfind(anchor) if anchor else -1
    if found < 0:
        return NewText(console, gap=bool(anchor))
    rest = console[found + len(anchor) :]
    if rest.startswith(tail):
        return NewText(rest[len(tail) :])
    return NewText("" if tail.startswith(rest) else rest)


def normal_line_ends(console: str) -> str:
    """``console`` with ``\\r\\n`` line ends as ``\\n``, less a ``\\r`` it ends with (its
    ``\\n`` may come with the next read; until then it is not known to be a line end)."""
    text = console.replace("\r\n", "\n")
    return text[:-1] if text.endswith("\r") else text


def last_lines(text: str, count: int | None) -> str:
    """The last ``count`` lines of ``text`` (all of it for ``None``), as nova's ``length``."""
    if count is None:
        return text
    lines = text.split("\n")
    ended = lines[-1] == ""
    if ended:
        lines.pop()
    kept = lines[-count:] if count > 0 else []
    return "\n".join(kept) + ("\n" if ended and kept else "")


class ConsoleTail:
    """What of a console has been shown, and what each new read adds to it."""

    def __init__(self) -> None:
        self.shown = ""

    def advance(self, console: str) -> NewText:
        """The new text of ``console`` (a whole read); it counts as shown from now on."""
        text = normal_line_ends(console)
        new = new_since(text, self.shown)
        self.shown = text
        return new


def follow_console(
    backend: CloudBackend,
    server: ServerInfo,
    write: Callable[[str], None],
    *,
    lines: int | None = None,
    interval: float = FOLLOW_INTERVAL,
    patience: float = FOLLOW_PATIENCE,
    note: Callable[[str], None] = lambda message: None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> NoReturn:
    """Write the console log of ``server`` (its last ``lines`` lines), then every ``interval``
    seconds what was printed since, until interrupted (``KeyboardInterrupt`` goes through).

    ``write`` gets the guest's text unescaped. Reads that fail are tried again (``note`` says
    so once) for ``patience`` seconds in a row, then the error is raised; a console nova has
    no more (``NotFoundError``) ends it with ``NotFoundError`` once the instance is gone, and
    is waited for while it is still there (stopped, rebuilt). A read whose start lost what was
    shown before (the log cut or replaced between two reads) is written whole, after a note.
    """
    tail = ConsoleTail()

    def read() -> str:
        return _read(backend, server, interval, patience, note=note, clock=clock, sleep=sleep)

    tail.advance(read())
    text = last_lines(tail.shown, lines)
    if text:
        write(text)
    while True:
        sleep(interval)
        new = tail.advance(read())
        if new.gap:
            note("the console log was cut or replaced since the last read: lines may be missing")
        if new.text:
            write(new.text)


def _read(
    backend: CloudBackend,
    server: ServerInfo,
    interval: float,
    patience: float,
    *,
    note: Callable[[str], None],
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> str:
    """One whole read of the console; failures retried as ``follow_console`` says."""
    failing_since: float | None = None
    while True:
        try:
            return backend.console_output(server.id)
        except NotFoundError as error:
            status = _status(backend, server)
            if status is None:
                raise NotFoundError(
                    f"instance {server.name} was deleted: its console log is gone"
                ) from error
            problem = f"no console log now (instance {status})"
        except CloudError as error:
            problem = f"console log unavailable ({error.message})"
        now = clock()
        if failing_since is None:
            failing_since = now
            note(f"{problem}: trying again every {interval:g} s")
        elif now - failing_since > patience:
            raise CloudError(
                f"{problem} for {now - failing_since:.0f} s: stopped following {server.name}"
            )
        sleep(interval)


def _status(backend: CloudBackend, server: ServerInfo) -> str | None:
    """The server's status, or None when it is gone."""
    try:
        status = backend.get_server(server.id).status
    except NotFoundError:
        return None
    except CloudError:
        return "state unknown"
    return None if status in GONE_STATUSES else status
