"""The local half of ``cloudrescue shell``: this terminal joined to a remote shell's channel.

``interact(channel, terminal)`` passes bytes both ways, never decoded, until the remote program
exits, the connection drops, the user leaves with the escape sequence (``escape.py``), or
SIGTERM/SIGHUP arrives. On a terminal it works as ssh does:

* the tty is put in raw mode only when stdin is a terminal and we are its foreground process
  group, so Ctrl-C, Ctrl-Z and Ctrl-\\ reach the remote program as bytes; on every way out
  (exit, exception, drop, signal) the tty's attributes are set back exactly as they were
  (``TCSADRAIN``, with SIGTTOU blocked so that it works even from the background);
* the size is sent once at the start (the caller gives the same one to ``get_pty``) and again
  on every SIGWINCH;
* SIGTSTP sets the tty back and stops the process (SIGSTOP); SIGCONT puts raw mode back (if we
  are in the foreground again) and resends the size.

When stdin is not a terminal (a script on stdin) nothing is changed and nothing is escaped:
stdin is sent as it is, its end becomes ``channel.shutdown_write()`` (``stdin_eof_closes``),
and the output is read until the remote program exits; a channel that carries stderr apart
(paramiko's without a pty) has it written to the local stderr.

Signals are caught only while ``interact`` runs (it must run in the main thread): each handler
only wakes the ``select`` loop through ``signal.set_wakeup_fd``; the previous handlers and
wakeup fd are put back on the way out, and a signal that came too late for the loop is raised
again for them. No thread: one ``select`` over stdin, the channel and the wakeup pipe.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import termios
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from types import FrameType
from typing import Any, Protocol, TypeAlias, runtime_checkable

from cloudrescue.shell.escape import (
    DEFAULT_ESCAPE,
    EscapeAction,
    EscapeKeys,
    EscapeParser,
    escape_help,
)
from cloudrescue.shell.record import Recorder

READ_SIZE = 32768  # paramiko's largest packet
STATUS_POLL = 0.1  # seconds between looks for the exit status once the output has ended
DEFAULT_SIZE = (80, 24)
ENDING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
TERMINAL_SIGNALS = (signal.SIGWINCH, signal.SIGTSTP, signal.SIGCONT)


class Channel(Protocol):
    """The subset of ``paramiko.Channel`` that ``interact`` uses."""

    def send(self, data: bytes) -> int: ...
    def recv(self, nbytes: int) -> bytes: ...
    def resize_pty(
        self, width: int = 80, height: int = 24, width_pixels: int = 0, height_pixels: int = 0
    ) -> None: ...
    def fileno(self) -> int: ...
    def exit_status_ready(self) -> bool: ...
    def recv_exit_status(self) -> int: ...
    def shutdown_write(self) -> None: ...
    def close(self) -> None: ...


@runtime_checkable
class StderrChannel(Channel, Protocol):
    """A channel that carries stderr apart (paramiko's does; all of it is stdout with a pty)."""

    def recv_ready(self) -> bool: ...
    def recv_stderr_ready(self) -> bool: ...
    def recv_stderr(self, nbytes: int) -> bytes: ...


class LeaveChoice(Enum):
    """What the user asked for when leaving with the escape sequence."""

    UNRESCUE = "unrescue"
    KEEP_RESCUED = "keep-rescued"


@dataclass(frozen=True)
class SessionEnd:
    """How a session ended.

    * the remote program exited: ``exit_status`` (0-255);
    * the user left with the escape sequence: ``choice``;
    * the channel ended (or failed) without an exit status: ``dropped``; paramiko ignores
      ``exit-signal``, so a remote program killed by a signal looks the same (the transport
      being still active tells them apart);
    * SIGTERM or SIGHUP arrived: ``signal`` (the caller cleans up as after Ctrl-C, then may
      ``signal.raise_signal(end.signal)`` to hand it to its own handler).
    """

    exit_status: int | None
    choice: LeaveChoice | None
    dropped: bool
    signal: int | None = None


@dataclass(frozen=True)
class LocalTerminal:
    """The local side's file descriptors and the facts ``interact`` asks about them."""

    stdin_fd: int
    stdout_fd: int
    stderr_fd: int = 2

    def is_tty(self) -> bool:
        """stdin is a terminal: the escape sequence and the terminal signals apply."""
        return os.isatty(self.stdin_fd)

    def is_foreground_tty(self) -> bool:
        """stdin is a terminal and our process group is its foreground group: raw mode."""
        try:
            return os.isatty(self.stdin_fd) and os.tcgetpgrp(self.stdin_fd) == os.getpgrp()
        except OSError:
            return False

    def size(self) -> tuple[int, int]:
        """Columns and lines of the terminal (stdout's, else stdin's; 80x24 when unknown)."""
        for fd in (self.stdout_fd, self.stdin_fd):
            try:
                columns, lines = os.get_terminal_size(fd)
            except OSError:
                continue
            if columns > 0 and lines > 0:
                return columns, lines
        return DEFAULT_SIZE

    @classmethod
    def of_process(cls) -> LocalTerminal:
        """This process's stdin, stdout and stderr (fds 0, 1, 2)."""
        return cls(stdin_fd=0, stdout_fd=1, stderr_fd=2)


def write_all(fd: int, data: bytes) -> None:
    """Write every byte of ``data`` to ``fd``, however many writes it takes (non-blocking fds
    included)."""
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BlockingIOError:
            select.select([], [fd], [])
            continue
        view = view[written:]


def _send_all(channel: Channel, data: bytes) -> None:
    """Send every byte; ``OSError`` when the channel takes no more."""
    view = memoryview(data)
    while view:
        sent = channel.send(bytes(view))
        if sent <= 0:
            raise BrokenPipeError("the channel takes no more input")
        view = view[sent:]


def _raw(attributes: list[Any]) -> list[Any]:
    """ssh's raw mode: no signals, no line editing, no echo, no CR/NL mapping on input or
    output, no flow control; the character size and speed left as they are."""
    iflag, oflag, cflag, lflag, ispeed, ospeed, cc = attributes
    iflag |= termios.IGNPAR
    iflag &= ~(
        termios.ISTRIP
        | termios.INLCR
        | termios.IGNCR
        | termios.ICRNL
        | termios.IXON
        | termios.IXANY
        | termios.IXOFF
    )
    lflag &= ~(
        termios.ISIG
        | termios.ICANON
        | termios.ECHO
        | termios.ECHOE
        | termios.ECHOK
        | termios.ECHONL
        | termios.IEXTEN
    )
    oflag &= ~termios.OPOST
    cc = list(cc)
    cc[termios.VMIN] = 1
    cc[termios.VTIME] = 0
    return [iflag, oflag, cflag, lflag, ispeed, ospeed, cc]


class _RawMode:
    """The tty in raw mode while we are its foreground, its own attributes back on leave()."""

    def __init__(self, terminal: LocalTerminal) -> None:
        self._terminal = terminal
        self._saved: list[Any] | None = None

    def enter(self) -> None:
        """Raw mode, when stdin is our foreground terminal (again)."""
        if self._saved is not None or not self._terminal.is_foreground_tty():
            return
        fd = self._terminal.stdin_fd
        saved = termios.tcgetattr(fd)
        termios.tcsetattr(fd, termios.TCSADRAIN, _raw(saved))
        self._saved = saved

    def leave(self) -> None:
        """The attributes as they were before ``enter`` (a terminal gone is no error)."""
        if self._saved is None:
            return
        saved, self._saved = self._saved, None
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTTOU})
        try:
            with contextlib.suppress(termios.error, OSError):
                termios.tcsetattr(self._terminal.stdin_fd, termios.TCSADRAIN, saved)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)


_Handler: TypeAlias = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None


def _wake_only(signum: int, frame: FrameType | None) -> None:
    """The session's handler: the C-level handler has already written to the wakeup fd."""


class _Signals:
    """The session's signals, each one turned into a byte on a pipe the loop selects on."""

    def __init__(self, signums: tuple[signal.Signals, ...]) -> None:
        self._signums = signums
        self._previous: dict[signal.Signals, _Handler] = {}
        self._previous_wakeup = -1
        self._pending: deque[int] = deque()
        self._read = self._write = -1

    def fileno(self) -> int:
        return self._read

    def __enter__(self) -> _Signals:
        self._read, self._write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            self._previous_wakeup = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        except ValueError:  # not the main thread
            self._close()
            raise
        for signum in self._signums:
            self._previous[signum] = signal.signal(signum, _wake_only)
        return self

    def _close(self) -> None:
        os.close(self._read)
        os.close(self._write)

    def _drain(self) -> None:
        while True:  # we hold the write end: the read never ends, it runs dry
            try:
                data = os.read(self._read, 512)
            except BlockingIOError:
                return
            # Every signal with a Python handler is written there; ours are the session's.
            self._pending.extend(s for s in data if s in self._signums)

    def take(self) -> Iterator[int]:
        """The signals that arrived, oldest first; those not taken stay for ``__exit__``."""
        self._drain()
        while self._pending:
            yield self._pending.popleft()

    def __exit__(self, *exc_info: object) -> None:
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, set(self._signums))
        try:
            for signum, handler in self._previous.items():
                signal.signal(signum, signal.SIG_DFL if handler is None else handler)
            signal.set_wakeup_fd(self._previous_wakeup)
            self._drain()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            self._close()
        late, self._pending = list(self._pending), deque()
        for number in late:  # came after the loop's last look: theirs now
            signal.raise_signal(number)


def _printable(text: str) -> str:
    return "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text)


class _Session:
    """One ``interact`` call's state; ``run`` is the select loop."""

    def __init__(
        self,
        channel: Channel,
        terminal: LocalTerminal,
        *,
        escape: EscapeKeys,
        on_sync: Callable[[], str] | None,
        recorder: Recorder | None,
        stdin_eof_closes: bool,
    ) -> None:
        self.channel = channel
        self.terminal = terminal
        self.tty = terminal.is_tty()
        self.escape = escape
        self.parser = EscapeParser(escape) if self.tty else None
        self.on_sync = on_sync
        self.recorder = recorder
        self.stdin_eof_closes = stdin_eof_closes
        self.raw = _RawMode(terminal)
        self.stdin_open = True  # stdin is read (on a terminal: for the escape too)
        self.input_open = True  # what is read is sent
        self.output_open = True  # the channel's output has not ended
        self.local_output = True  # our stdout/stderr still take bytes
        self.end: SessionEnd | None = None

    # -- the loop -------------------------------------------------------------------------

    def run(self, signals: _Signals) -> SessionEnd:
        if self.tty:
            self.raw.enter()
            self.send_size()
        channel_fd = self.channel.fileno()
        stdin_fd = self.terminal.stdin_fd
        while self.end is None:
            if not self.output_open and self.channel.exit_status_ready():
                status = self.channel.recv_exit_status()
                return SessionEnd(
                    exit_status=status if status >= 0 else None, choice=None, dropped=status < 0
                )
            watched = [signals.fileno()]
            if self.output_open:
                watched.append(channel_fd)
            if self.stdin_open:
                watched.append(stdin_fd)
            ready, _, _ = select.select(watched, [], [], None if self.output_open else STATUS_POLL)
            if channel_fd in ready:
                self.on_output()
            if stdin_fd in ready and self.end is None:
                self.on_input()
            if signals.fileno() in ready and self.end is None:
                self.on_signals(signals)
        return self.end

    # -- remote to local ------------------------------------------------------------------

    def on_output(self) -> None:
        channel = self.channel
        try:
            if isinstance(channel, StderrChannel):
                data = self.separate_streams(channel)
                if data is None:
                    return
            else:
                data = channel.recv(READ_SIZE)
        except OSError:
            self.end = SessionEnd(exit_status=None, choice=None, dropped=True)
            return
        if data:
            self.show(data, self.terminal.stdout_fd)
            return
        self.output_open = False
        if isinstance(channel, StderrChannel):
            while channel.recv_stderr_ready():
                self.show(channel.recv_stderr(READ_SIZE), self.terminal.stderr_fd)

    def separate_streams(self, channel: StderrChannel) -> bytes | None:
        """stderr written out; then stdout's bytes, ``b""`` at its end, or ``None`` when the
        channel woke us for stderr only (its ``recv`` would block)."""
        while True:
            while channel.recv_stderr_ready():
                self.show(channel.recv_stderr(READ_SIZE), self.terminal.stderr_fd)
            if channel.recv_ready():
                return channel.recv(READ_SIZE)
            if not select.select([channel.fileno()], [], [], 0)[0]:
                return None
            if not channel.recv_stderr_ready():
                # Readable with nothing buffered: the end (paramiko keeps the fd readable).
                return channel.recv(READ_SIZE)

    def show(self, data: bytes, fd: int) -> None:
        """The remote side's bytes, recorded and written as they came."""
        if self.recorder is not None:
            try:
                self.recorder.write(data)
            except OSError as error:
                self.recorder = None
                self.notice(f"recording stopped: {error.strerror or error}")
        if self.local_output:
            try:
                write_all(fd, data)
            except OSError:
                self.local_output = False  # the terminal is gone (SIGHUP follows) or a pipe

    def notice(self, *lines: str) -> None:
        """A line of ours, shown right in raw mode (on stderr when stdin is not a terminal)."""
        if not self.local_output:
            return
        if self.tty:
            text = "\r\n" + "".join(f"[cloudrescue] {_printable(line)}\r\n" for line in lines)
            fd = self.terminal.stdout_fd
        else:
            text = "".join(f"[cloudrescue] {_printable(line)}\n" for line in lines)
            fd = self.terminal.stderr_fd
        with contextlib.suppress(OSError):
            write_all(fd, text.encode())

    # -- local to remote ------------------------------------------------------------------

    def on_input(self) -> None:
        try:
            data = os.read(self.terminal.stdin_fd, READ_SIZE)
        except BlockingIOError:
            return
        except OSError:  # EIO: the terminal is gone
            data = b""
        if not data:
            self.stdin_open = False
            if self.stdin_eof_closes and self.input_open:
                self.input_open = False
                with contextlib.suppress(OSError):
                    self.channel.shutdown_write()
            return
        events = [data] if self.parser is None else self.parser.feed(data)
        for event in events:
            if isinstance(event, bytes):
                self.forward(event)
            else:
                self.on_escape(event)
                if self.end is not None:
                    return

    def forward(self, data: bytes) -> None:
        if not self.input_open:
            return
        try:
            _send_all(self.channel, data)
        except OSError:
            self.input_open = False
            if not self.tty:  # on a terminal stdin is still read, for the escape keys
                self.stdin_open = False

    def on_escape(self, action: EscapeAction) -> None:
        if action is EscapeAction.UNRESCUE:
            self.notice("leaving the shell, then unrescuing the instance")
            self.end = SessionEnd(exit_status=None, choice=LeaveChoice.UNRESCUE, dropped=False)
        elif action is EscapeAction.KEEP_RESCUED:
            self.notice("leaving the shell, keeping the instance in rescue")
            self.end = SessionEnd(exit_status=None, choice=LeaveChoice.KEEP_RESCUED, dropped=False)
        elif action is EscapeAction.SYNC:
            self.notice("sync is not offered here" if self.on_sync is None else self.on_sync())
        else:
            self.notice(*escape_help(self.escape).splitlines())

    # -- signals --------------------------------------------------------------------------

    def on_signals(self, signals: _Signals) -> None:
        for signum in signals.take():
            if signum in ENDING_SIGNALS:
                self.end = SessionEnd(exit_status=None, choice=None, dropped=False, signal=signum)
                return
            if signum == signal.SIGTSTP:
                self.raw.leave()
                os.kill(os.getpid(), signal.SIGSTOP)
            elif signum == signal.SIGCONT:
                self.raw.enter()
                self.send_size()
            elif signum == signal.SIGWINCH:
                self.send_size()

    def send_size(self) -> None:
        if self.channel.exit_status_ready():  # closed, or its program has exited
            return
        columns, lines = self.terminal.size()
        with contextlib.suppress(OSError):
            self.channel.resize_pty(width=columns, height=lines)


def interact(
    channel: Channel,
    terminal: LocalTerminal,
    *,
    escape: EscapeKeys = DEFAULT_ESCAPE,
    on_sync: Callable[[], str] | None = None,
    recorder: Recorder | None = None,
    stdin_eof_closes: bool = True,
) -> SessionEnd:
    """Join ``terminal`` to ``channel`` until the session ends, and say how it ended.

    ``on_sync`` runs for ``Ctrl-] s`` and returns the line to show (its exceptions end the
    session, the tty restored). ``recorder`` gets every byte of output (a recording that fails
    stops with a notice; the caller closes it). The channel is closed on the way out: leaving
    with the escape sequence or on a signal ends the remote side's client (tmux stays).
    Call it from the main thread (it catches signals).
    """
    session = _Session(
        channel,
        terminal,
        escape=escape,
        on_sync=on_sync,
        recorder=recorder,
        stdin_eof_closes=stdin_eof_closes,
    )
    signums = ENDING_SIGNALS + (TERMINAL_SIGNALS if session.tty else ())
    try:
        with _Signals(signums) as signals:
            try:
                return session.run(signals)
            finally:
                session.raw.leave()
    finally:
        with contextlib.suppress(OSError):
            channel.close()
