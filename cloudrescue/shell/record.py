"""``--record FILE``: a timed typescript of the shell's output, as util-linux ``script -T``
writes it in its classic format, so that ``scriptreplay -t FILE.timing FILE`` replays it.

``FILE`` holds a ``Script started on ...`` line, then every byte the remote side printed,
unchanged, then a ``Script done on ...`` line. ``FILE.timing`` holds one
``<seconds since the previous output> <byte count>`` line per output. What the user types is
never recorded (passwords are typed in the shell); output echoed by the remote terminal is.
Both files are new (never an existing file or symlink overwritten) and mode 0600.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from cloudrescue.errors import InvalidInputError

TIMING_SUFFIX = ".timing"
FILE_MODE = 0o600


def _local_now() -> datetime:
    return datetime.now().astimezone()


def _header_value(value: str) -> str:
    """One header value, kept on the header's line and inside its quotes."""
    return "".join(ch if ch.isprintable() and ch != '"' else "?" for ch in value)


def _exists(path: Path) -> InvalidInputError:
    return InvalidInputError(
        f"{path} already exists: a recording never overwrites a file",
        hint="give --record a new file name, or remove the old one",
    )


def _create(path: Path) -> BinaryIO:
    """A new file at ``path``, mode 0600; an existing file (or symlink) is refused."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, FILE_MODE)
    except FileExistsError:
        raise _exists(path) from None
    except OSError as error:
        raise InvalidInputError(f"cannot create {path}: {error.strerror}") from None
    os.fchmod(fd, FILE_MODE)  # whatever the umask
    return open(fd, "wb")


class Recorder:
    """Writes the output of a session as a typescript and its timing file.

    ``clock`` (monotonic seconds) times the outputs; ``now`` dates the header and footer.
    """

    def __init__(
        self,
        typescript: BinaryIO,
        timing: BinaryIO,
        path: Path,
        *,
        clock: Callable[[], float],
        now: Callable[[], datetime],
    ) -> None:
        self._typescript = typescript
        self._timing = timing
        self._clock = clock
        self._now = now
        self._last = clock()
        self.path = path
        self.timing_path = path.with_name(path.name + TIMING_SUFFIX)
        self.closed = False

    @classmethod
    def create(
        cls,
        path: Path,
        *,
        info: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = _local_now,
    ) -> Recorder:
        """Create ``path`` and ``path.timing`` (neither may exist) and write the header.

        ``info`` goes into the header as ``script`` writes it: ``COMMAND``, ``TERM``,
        ``COLUMNS``, ``LINES``. Raises ``InvalidInputError`` when a file exists or cannot be
        made.
        """
        path = Path(path)
        timing_path = path.with_name(path.name + TIMING_SUFFIX)
        for made in (path, timing_path):  # neither is made when one exists
            if os.path.lexists(made):
                raise _exists(made)
        typescript = _create(path)
        try:
            timing = _create(timing_path)
        except InvalidInputError:
            typescript.close()
            path.unlink()
            raise
        recorder = cls(typescript, timing, path, clock=clock, now=now)
        fields = " ".join(f'{key}="{_header_value(value)}"' for key, value in (info or {}).items())
        header = f"Script started on {recorder._stamp()}" + (f" [{fields}]" if fields else "")
        typescript.write(f"{header}\n".encode())
        typescript.flush()
        return recorder

    def _stamp(self) -> str:
        return self._now().isoformat(sep=" ", timespec="seconds")

    def write(self, data: bytes) -> None:
        """Record one output, as is. Raises ``OSError`` when the disk refuses it."""
        if not data:
            return
        now = self._clock()
        delay = max(0.0, now - self._last)
        self._last = now
        self._typescript.write(data)
        self._typescript.flush()  # the bytes first: a timing line never points past them
        self._timing.write(f"{delay:.6f} {len(data)}\n".encode())
        self._timing.flush()

    def close(self, exit_status: int | None = None) -> None:
        """Write the footer (best effort: the recording is whole without it) and close."""
        if self.closed:
            return
        self.closed = True
        status = f' [COMMAND_EXIT_CODE="{exit_status}"]' if exit_status is not None else ""
        try:
            with contextlib.suppress(OSError):  # a full disk: the timed part is written
                self._typescript.write(f"\nScript done on {self._stamp()}{status}\n".encode())
                self._typescript.flush()
        finally:
            for stream in (self._typescript, self._timing):
                with contextlib.suppress(OSError):
                    stream.close()

    @property
    def replay_command(self) -> str:
        """The command that replays the recording."""
        return shlex.join(["scriptreplay", "-t", str(self.timing_path), str(self.path)])

    def __enter__(self) -> Recorder:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
