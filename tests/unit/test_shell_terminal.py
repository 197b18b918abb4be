"""The local terminal of ``cloudrescue shell`` (issue 11): raw mode and its restoration on every
way out, signals, resizes, bytes passed through unchanged, the escape keys, and a script on
stdin.

A terminal session runs ``interact`` in a child process whose stdin, stdout and stderr are a
real pty (its controlling terminal, the child in its foreground), driven from the test through
the pty's master; the test keeps the slave too, to read the tty's attributes. The channel is
``FakeChannel``: a SOCK_SEQPACKET socket to the test, one packet per event. Pipe-mode sessions
run in this process, with the remote side in a thread.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import termios
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paramiko
import pytest

from cloudrescue.shell.escape import (
    ESCAPE_HELP,
    EscapeAction,
    EscapeKeys,
    EscapeParser,
    escape_help,
)
from cloudrescue.shell.record import Recorder
from cloudrescue.shell.terminal import (
    LeaveChoice,
    LocalTerminal,
    SessionEnd,
    StderrChannel,
    interact,
    write_all,
)
from tests.fakes import FakeClock

pytestmark = pytest.mark.timeout(120)

TIMEOUT = 20.0  # seconds for anything to happen: generous, a loaded machine is slow
SIZE = (100, 30)
SESSION_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGWINCH, signal.SIGTSTP, signal.SIGCONT)
CTRL = b"\x1d"  # Ctrl-]


# -- the fake channel (the interact side) ---------------------------------------------------


class FakeChannel:
    """paramiko.Channel's subset over a SOCK_SEQPACKET socket; the test is the remote side.

    From the test: b"o" + output, b"e" + stderr, b"x<status>" (the status, then the end of the
    output), b"f" (the end of the output, no status yet), b"s<status>" (after b"f"), b"r" (recv
    fails: a reset connection); the test closing its end is a cut (closed, no status: paramiko's
    -1). To the test: b"i" + what was sent, b"w<columns> <lines>", b"S" (shutdown_write),
    b"K" (close).
    """

    def __init__(self, sock: socket.socket, *, send_limit: int | None = None) -> None:
        self.sock = sock
        self.send_limit = send_limit
        self.status: int | None = None
        self.eof = False
        self.cut = False

    def fileno(self) -> int:
        return self.sock.fileno()

    def _poll(self, size: int, flags: int = 0) -> bytes | None:
        try:
            return self.sock.recv(size, flags | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return None

    def recv(self, nbytes: int) -> bytes:
        if self.eof:
            return b""
        packet = self.sock.recv(65536)
        kind, body = packet[:1], packet[1:]
        if kind == b"o":
            assert len(body) <= nbytes
            return body
        if kind == b"r":
            raise ConnectionResetError(errno.ECONNRESET, "connection reset")
        self.eof = True
        if kind == b"x":
            self.status = int(body)
        elif not packet:
            self.cut = True
        else:
            assert kind == b"f", packet
        return b""

    def exit_status_ready(self) -> bool:
        while self.eof and self.status is None and not self.cut:
            packet = self._poll(65536)
            if packet is None:
                break
            if not packet:
                self.cut = True
            else:
                assert packet[:1] == b"s", packet
                self.status = int(packet[1:])
        return self.cut or self.status is not None

    def recv_exit_status(self) -> int:
        return -1 if self.status is None else self.status

    def send(self, data: bytes) -> int:
        chunk = data[: self.send_limit] if self.send_limit else data
        self.sock.send(b"i" + chunk)
        return len(chunk)

    def resize_pty(
        self, width: int = 80, height: int = 24, width_pixels: int = 0, height_pixels: int = 0
    ) -> None:
        self.sock.send(b"w%d %d" % (width, height))

    def shutdown_write(self) -> None:
        self.sock.send(b"S")

    def close(self) -> None:
        self.sock.send(b"K")


class FakeStderrChannel(FakeChannel):
    """A channel with stderr apart, as paramiko's without a pty."""

    def _kind(self) -> bytes | None:
        return None if self.eof else self._poll(1, socket.MSG_PEEK)

    def recv_ready(self) -> bool:
        return self._kind() == b"o"

    def recv_stderr_ready(self) -> bool:
        return self._kind() == b"e"

    def recv_stderr(self, nbytes: int) -> bytes:
        packet = self.sock.recv(65536)
        assert packet[:1] == b"e" and len(packet) - 1 <= nbytes, packet
        return packet[1:]


# -- the remote side (the test) -------------------------------------------------------------


@dataclass
class Remote:
    """The test's end of a FakeChannel: what interact did, and what the remote program does."""

    sock: socket.socket
    sent: bytearray = field(default_factory=bytearray)
    resizes: list[tuple[int, int]] = field(default_factory=list)
    log: list[bytes] = field(default_factory=list)  # every packet's kind, in order
    gone: bool = False

    def output(self, data: bytes) -> None:
        self.sock.send(b"o" + data)

    def stderr(self, data: bytes) -> None:
        self.sock.send(b"e" + data)

    def exit(self, status: int) -> None:
        self.sock.send(b"x%d" % status)

    def send(self, packet: bytes) -> None:
        self.sock.send(packet)

    def _take(self, packet: bytes) -> None:
        if not packet:
            self.gone = True
            return
        kind, body = packet[:1], packet[1:]
        self.log.append(kind)
        if kind == b"i":
            self.sent += body
        elif kind == b"w":
            columns, lines = body.split()
            self.resizes.append((int(columns), int(lines)))

    def wait(self, done: Callable[[Remote], bool], what: str) -> None:
        deadline = time.monotonic() + TIMEOUT
        while not done(self):
            left = deadline - time.monotonic()
            if self.gone or left <= 0:
                raise AssertionError(f"never {what}: {self.log} {bytes(self.sent)!r}")
            if select.select([self.sock], [], [], left)[0]:
                self._take(self.sock.recv(65536))

    def drain(self) -> None:
        while not self.gone and select.select([self.sock], [], [], 0)[0]:
            self._take(self.sock.recv(65536))

    def wait_sent(self, data: bytes) -> None:
        self.wait(lambda remote: data in remote.sent, f"sent {data!r}")

    def wait_resizes(self, count: int) -> None:
        self.wait(lambda remote: len(remote.resizes) >= count, f"resized {count} times")


def seqpacket_pair() -> tuple[socket.socket, socket.socket]:
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)


# -- a terminal session in a child process ----------------------------------------------------

Scenario = Callable[[FakeChannel, LocalTerminal], SessionEnd]
delivered: list[int] = []  # the child's signals that reached the handlers it had before


def _previous_handler(signum: int, frame: object) -> None:
    delivered.append(signum)


def plain(channel: FakeChannel, terminal: LocalTerminal) -> SessionEnd:
    return interact(channel, terminal)


def _in_child(scenario: Scenario, sock: socket.socket) -> dict[str, Any]:
    """Run the scenario as the pty's foreground process; report what happened."""
    signal.signal(signal.SIGTERM, _previous_handler)
    signal.signal(signal.SIGHUP, _previous_handler)
    wakeup = os.pipe2(os.O_NONBLOCK)[1]
    signal.set_wakeup_fd(wakeup)
    before = {signum: signal.getsignal(signum) for signum in SESSION_SIGNALS}
    terminal = LocalTerminal.of_process()
    outcome: dict[str, Any] = {"foreground": terminal.is_foreground_tty()}
    try:
        end = scenario(FakeChannel(sock), terminal)
        outcome["end"] = {
            "exit_status": end.exit_status,
            "choice": None if end.choice is None else end.choice.value,
            "dropped": end.dropped,
            "signal": end.signal,
        }
    except Exception as error:
        outcome["error"] = f"{type(error).__name__}: {error}"
    outcome["handlers_restored"] = all(
        signal.getsignal(signum) is handler for signum, handler in before.items()
    )
    outcome["wakeup_restored"] = signal.set_wakeup_fd(-1) == wakeup
    outcome["delivered"] = delivered
    return outcome


@dataclass
class Child:
    """The child running a session, its pty (master and slave) and its remote side."""

    pid: int
    master: int
    slave: int
    remote: Remote
    report: int
    before: list[Any]
    screen: bytearray = field(default_factory=bytearray)
    status: int | None = None

    def type(self, data: bytes) -> None:
        os.write(self.master, data)

    def attributes(self) -> list[Any]:
        return termios.tcgetattr(self.slave)

    def raw(self) -> bool:
        lflag = self.attributes()[3]
        return not lflag & (termios.ICANON | termios.ECHO | termios.ISIG)

    def expect(self, data: bytes) -> None:
        """Wait until the screen shows ``data``."""
        deadline = time.monotonic() + TIMEOUT
        while data not in self.screen:
            left = deadline - time.monotonic()
            assert left > 0, f"the screen never showed {data!r}: {bytes(self.screen)!r}"
            if select.select([self.master], [], [], left)[0]:
                self.screen += os.read(self.master, 65536)

    def wait_stopped(self) -> None:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG | os.WUNTRACED)
            if pid and os.WIFSTOPPED(status):
                return
            time.sleep(0.01)
        raise AssertionError("the child never stopped")

    def finish(self) -> dict[str, Any]:
        """The child's report, once it has exited; the tty's attributes checked restored."""
        data = b""
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            if select.select([self.report], [], [], max(0.0, deadline - time.monotonic()))[0]:
                chunk = os.read(self.report, 65536)
                if not chunk:
                    break
                data += chunk
        else:
            raise AssertionError(f"the session never ended: {bytes(self.screen)!r}")
        _, self.status = os.waitpid(self.pid, 0)
        self.remote.drain()
        report: dict[str, Any] = json.loads(data)
        assert "traceback" not in report, report["traceback"]
        return report


@pytest.fixture
def spawn() -> Iterator[Callable[..., Child]]:
    children: list[Child] = []

    def start(scenario: Scenario = plain) -> Child:
        master, slave = os.openpty()
        columns, lines = SIZE
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))
        # Settings of the user's own, which raw mode must give back as they were.
        attributes = termios.tcgetattr(slave)
        attributes[0] |= termios.IXANY
        attributes[6][termios.VERASE] = b"\x08"
        termios.tcsetattr(slave, termios.TCSANOW, attributes)
        before = termios.tcgetattr(slave)
        ours, theirs = seqpacket_pair()
        report_read, report_write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never back into pytest
            try:
                os.close(master)
                os.close(report_read)
                ours.close()
                os.login_tty(slave)
                result = _in_child(scenario, theirs)
            except BaseException:
                result = {"traceback": traceback.format_exc()}
            with contextlib.suppress(BaseException):
                os.write(report_write, json.dumps(result).encode())
            os._exit(0)
        os.close(report_write)
        theirs.close()
        child = Child(pid, master, slave, Remote(ours), report_read, before)
        children.append(child)
        return child

    yield start
    for child in children:
        if child.status is None:
            with contextlib.suppress(OSError):
                os.kill(child.pid, signal.SIGKILL)
                os.waitpid(child.pid, 0)
        for fd in (child.master, child.slave, child.report):
            os.close(fd)
        child.remote.sock.close()


def restored(child: Child, report: dict[str, Any]) -> None:
    """The tty as the user had it, and the signal handlers and wakeup fd put back."""
    assert child.attributes() == child.before
    assert report["handlers_restored"] and report["wakeup_restored"], report
    assert report["foreground"], report


def started(child: Child) -> None:
    """The session is running: the size sent, raw mode on."""
    child.remote.wait_resizes(1)
    assert child.remote.resizes == [SIZE]
    assert child.raw()


# -- raw mode and its restoration -------------------------------------------------------------


def test_raw_mode_sends_control_keys_as_bytes_and_is_undone_at_exit(
    spawn: Callable[..., Child],
) -> None:
    child = spawn()
    started(child)
    attributes = child.attributes()
    assert not attributes[0] & (termios.ICRNL | termios.IXON) and not attributes[1] & termios.OPOST
    child.type(b"\x03\x1a\x1c\r")  # Ctrl-C, Ctrl-Z, Ctrl-\, Return: bytes, not signals
    child.remote.wait_sent(b"\x03\x1a\x1c\r")
    child.remote.output(b"^C\r\n# ")
    child.expect(b"^C\r\n# ")
    child.remote.exit(3)
    report = child.finish()
    assert report["end"] == {"exit_status": 3, "choice": None, "dropped": False, "signal": None}
    restored(child, report)
    assert child.remote.sent == b"\x03\x1a\x1c\r"
    assert child.remote.log[-1] == b"K"  # the channel closed on the way out
    assert child.status == 0


def test_an_exception_restores_the_tty_and_a_late_signal_goes_to_the_old_handler(
    spawn: Callable[..., Child],
) -> None:
    def failing_sync() -> str:
        os.kill(os.getpid(), signal.SIGTERM)  # arrives, but the loop never looks again
        raise RuntimeError("sync failed")

    child = spawn(lambda channel, terminal: interact(channel, terminal, on_sync=failing_sync))
    started(child)
    child.type(CTRL + b"s")
    report = child.finish()
    assert report["error"] == "RuntimeError: sync failed"
    assert report["delivered"] == [signal.SIGTERM]
    restored(child, report)
    assert child.remote.log[-1] == b"K"


def _closed(remote: Remote) -> None:
    remote.sock.shutdown(socket.SHUT_WR)  # paramiko: the channel closed, no exit status


def _reset(remote: Remote) -> None:
    remote.send(b"r")


def _output_ends_then_closed(remote: Remote) -> None:
    remote.send(b"f")
    time.sleep(0.3)  # the loop waits for a status that never comes
    _closed(remote)


@pytest.mark.parametrize("cut", [_closed, _reset, _output_ends_then_closed])
def test_a_dropped_connection_restores_the_tty(
    spawn: Callable[..., Child], cut: Callable[[Remote], None]
) -> None:
    child = spawn()
    started(child)
    child.remote.output(b"working...")
    child.expect(b"working...")
    cut(child.remote)
    report = child.finish()
    assert report["end"] == {"exit_status": None, "choice": None, "dropped": True, "signal": None}
    restored(child, report)


def test_the_exit_status_may_come_after_the_end_of_the_output(
    spawn: Callable[..., Child],
) -> None:
    child = spawn()
    started(child)
    child.remote.send(b"f")
    time.sleep(0.3)  # the loop looks for the status, stdin still read
    child.type(b"x")
    child.remote.wait_sent(b"x")
    child.remote.send(b"s7")
    report = child.finish()
    assert report["end"] == {"exit_status": 7, "choice": None, "dropped": False, "signal": None}
    restored(child, report)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_end_the_session_with_the_tty_restored(
    spawn: Callable[..., Child], signum: int
) -> None:
    child = spawn()
    started(child)
    os.kill(child.pid, signum)
    report = child.finish()
    ended = {"exit_status": None, "choice": None, "dropped": False, "signal": signum}
    assert report["end"] == ended
    assert report["delivered"] == []  # taken by the session, not passed on
    restored(child, report)
    assert child.remote.log[-1] == b"K"


def test_sigtstp_restores_the_tty_and_sigcont_puts_raw_mode_and_the_size_back(
    spawn: Callable[..., Child],
) -> None:
    child = spawn()
    started(child)
    os.kill(child.pid, signal.SIGTSTP)
    child.wait_stopped()
    assert child.attributes() == child.before
    os.kill(child.pid, signal.SIGCONT)
    child.remote.wait_resizes(2)
    assert child.raw() and child.remote.resizes == [SIZE, SIZE]
    child.type(b"\x03")
    child.remote.wait_sent(b"\x03")
    child.remote.exit(0)
    report = child.finish()
    assert report["end"]["exit_status"] == 0
    restored(child, report)


def test_sigwinch_resizes_the_remote_pty(spawn: Callable[..., Child]) -> None:
    child = spawn()
    started(child)
    fcntl.ioctl(child.master, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    child.remote.wait_resizes(2)
    fcntl.ioctl(child.master, termios.TIOCSWINSZ, struct.pack("HHHH", 12, 50, 0, 0))
    child.remote.wait_resizes(3)
    assert child.remote.resizes == [SIZE, (120, 40), (50, 12)]
    child.remote.exit(0)
    restored(child, child.finish())


def test_no_raw_mode_when_not_the_foreground_of_the_terminal(
    spawn: Callable[..., Child],
) -> None:
    class Background(LocalTerminal):
        def is_foreground_tty(self) -> bool:
            return False

    child = spawn(lambda channel, terminal: interact(channel, Background(0, 1, 2)))
    child.remote.wait_resizes(1)
    assert child.attributes() == child.before
    child.type(b"ls\n")  # the line discipline's: a line at a time
    child.remote.wait_sent(b"ls\n")
    child.type(CTRL + b"k\n")  # still a terminal: the escape keys work
    report = child.finish()
    assert report["end"]["choice"] == "keep-rescued"
    assert child.attributes() == child.before
    assert child.remote.sent == b"ls\n"


# -- bytes, never decoded -----------------------------------------------------------------------


def test_bytes_pass_both_ways_unchanged(spawn: Callable[..., Child]) -> None:
    child = spawn()
    started(child)
    child.remote.output(b"caf\xc3")  # an é split over two reads
    child.remote.output(b"\xa9 \xff\xfe\x00\x1b[1m\r\n")  # invalid UTF-8, NUL, an escape code
    child.expect(b"caf\xc3\xa9 \xff\xfe\x00\x1b[1m\r\n")
    child.type(b"\xc3")
    child.remote.wait_sent(b"\xc3")
    child.type(b"\xa9\xff\xfe\x00")
    child.remote.wait_sent(b"\xc3\xa9\xff\xfe\x00")
    child.remote.exit(0)
    report = child.finish()
    assert report["end"]["exit_status"] == 0
    restored(child, report)


# -- the escape keys ----------------------------------------------------------------------------


def test_escape_parser_finds_every_key_anywhere() -> None:
    parser = EscapeParser()
    assert parser.feed(b"ls\r") == [b"ls\r"]
    assert parser.feed(b"a" + CTRL + b".b") == [b"a", EscapeAction.UNRESCUE, b"b"]
    for key, action in [
        (b"q", EscapeAction.UNRESCUE),
        (b"Q", EscapeAction.UNRESCUE),
        (b"k", EscapeAction.KEEP_RESCUED),
        (b"K", EscapeAction.KEEP_RESCUED),
        (b"s", EscapeAction.SYNC),
        (b"?", EscapeAction.HELP),
        (b"h", EscapeAction.HELP),
        (b"x", EscapeAction.HELP),  # a key that means nothing: help, and nothing sent
        (b"\r", EscapeAction.HELP),
    ]:
        assert parser.feed(CTRL + key) == [action], key
    assert parser.feed(CTRL + CTRL) == [CTRL]  # one literal Ctrl-]
    assert parser.feed(b"x" + CTRL + CTRL + b"y") == [b"x" + CTRL + b"y"]
    assert parser.feed(b"ab" + CTRL) == [b"ab"]  # the key comes with the next read
    assert parser.feed(b"k!") == [EscapeAction.KEEP_RESCUED, b"!"]
    assert parser.feed(CTRL) == []
    assert parser.feed(CTRL) == [CTRL]
    assert parser.feed(CTRL + b"s" + CTRL + b"?") == [EscapeAction.SYNC, EscapeAction.HELP]


def test_another_escape_prefix_and_its_help() -> None:
    keys = EscapeKeys(prefix=0x1E, name="Ctrl-^")
    assert EscapeParser(keys).feed(b"\x1e." + CTRL + b".") == [EscapeAction.UNRESCUE, CTRL + b"."]
    assert "Ctrl-^ k" in escape_help(keys)
    with pytest.raises(ValueError, match="control byte"):
        EscapeKeys(prefix=ord("~"))


def test_escape_help_names_every_key() -> None:
    for shown in ("Ctrl-] .", "(or q)", "Ctrl-] k", "Ctrl-] s", "Ctrl-] ?", "(or h)"):
        assert shown in ESCAPE_HELP
    assert "Ctrl-] Ctrl-]" in ESCAPE_HELP and "anywhere" in ESCAPE_HELP


def test_escape_keys_in_a_session(spawn: Callable[..., Child]) -> None:
    child = spawn(lambda channel, terminal: interact(channel, terminal, on_sync=lambda: "synced"))
    started(child)
    child.type(b"a" + CTRL + b"?")
    child.expect(b"\r\n[cloudrescue] Escape keys")
    child.expect(b"[cloudrescue]   Ctrl-] k          leave the shell, keep")
    child.type(CTRL + b"z")  # means nothing: help again, nothing sent
    child.type(CTRL + CTRL)
    child.type(CTRL + b"s")
    child.expect(b"\r\n[cloudrescue] synced\r\n")
    assert child.screen.count(b"[cloudrescue] Escape keys") == 2
    child.type(b"b" + CTRL)
    child.remote.wait_sent(b"b")
    child.type(b".")  # the key in a read of its own
    report = child.finish()
    assert report["end"] == {
        "exit_status": None,
        "choice": "unrescue",
        "dropped": False,
        "signal": None,
    }
    assert child.remote.sent == b"a" + CTRL + b"b"
    child.expect(b"[cloudrescue] leaving the shell, then unrescuing the instance\r\n")
    restored(child, report)


@pytest.mark.parametrize(("key", "choice"), [(b"q", "unrescue"), (b"k", "keep-rescued")])
def test_leaving_with_the_escape(spawn: Callable[..., Child], key: bytes, choice: str) -> None:
    child = spawn()
    started(child)
    child.type(CTRL + key)
    report = child.finish()
    assert report["end"]["choice"] == choice
    restored(child, report)


def test_sync_without_a_sync_offered(spawn: Callable[..., Child]) -> None:
    child = spawn()
    started(child)
    child.type(CTRL + b"S")
    child.expect(b"[cloudrescue] sync is not offered here\r\n")
    child.remote.exit(0)
    restored(child, child.finish())


# -- the recording of a terminal session ---------------------------------------------------------


@pytest.mark.skipif(shutil.which("scriptreplay") is None, reason="no scriptreplay (bsdutils)")
def test_a_recorded_session_replays_its_output_and_never_the_typing(
    spawn: Callable[..., Child], tmp_path: Path
) -> None:
    path = tmp_path / "session.typescript"

    def recorded(channel: FakeChannel, terminal: LocalTerminal) -> SessionEnd:
        with Recorder.create(path, info={"COMMAND": "cloudrescue shell web-1"}) as recorder:
            end = interact(channel, terminal, recorder=recorder)
            recorder.close(end.exit_status)
        return end

    child = spawn(recorded)
    started(child)
    child.remote.output(b"Password: ")
    child.expect(b"Password: ")
    child.type(b"s3cret\r")
    child.remote.wait_sent(b"s3cret\r")
    child.remote.output(b"\r\nok \xc3")
    child.remote.output(b"\xa9\r\n")
    child.expect(b"ok \xc3\xa9\r\n")
    child.remote.exit(0)
    report = child.finish()
    assert report["end"]["exit_status"] == 0
    typescript = path.read_bytes()
    assert b"s3cret" not in typescript
    assert typescript.startswith(b"Script started on ")
    assert b'COMMAND="cloudrescue shell web-1"' in typescript.splitlines()[0]
    assert typescript.endswith(b'[COMMAND_EXIT_CODE="0"]\n')
    replayed = subprocess.run(
        ["scriptreplay", "-t", f"{path}.timing", str(path)],
        capture_output=True,
        timeout=60,
        check=True,
    ).stdout
    shown = b"Password: \r\nok \xc3\xa9\r\n"
    assert replayed in (shown, shown + b"\n")  # scriptreplay ends with a newline of its own


# -- a script on stdin (no terminal), in this process ---------------------------------------------


@dataclass
class Piped:
    """A pipe-mode session's files: stdin a file, stdout and stderr files."""

    end: SessionEnd
    stdout: bytes
    stderr: bytes
    remote: Remote


def run_piped(
    tmp_path: Path,
    script: bytes,
    program: Callable[[Remote], None],
    *,
    stdout_fd: int | None = None,
    **options: Any,
) -> Piped:
    (tmp_path / "script").write_bytes(script)
    stdin = os.open(tmp_path / "script", os.O_RDONLY)
    out = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT)
    err = os.open(tmp_path / "err", os.O_WRONLY | os.O_CREAT)
    ours, theirs = seqpacket_pair()
    remote = Remote(ours)
    thread = threading.Thread(target=program, args=(remote,), daemon=True)
    thread.start()
    try:
        terminal = LocalTerminal(stdin, out if stdout_fd is None else stdout_fd, err)
        assert not terminal.is_tty() and not terminal.is_foreground_tty()
        end = interact(FakeStderrChannel(theirs, send_limit=1000), terminal, **options)
        thread.join(TIMEOUT)
        assert not thread.is_alive()
        remote.drain()
    finally:
        for fd in (stdin, out, err):
            os.close(fd)
        ours.close()
        theirs.close()
    return Piped(end, (tmp_path / "out").read_bytes(), (tmp_path / "err").read_bytes(), remote)


def test_a_script_on_stdin_is_sent_whole_then_the_output_read_until_the_exit(
    tmp_path: Path,
) -> None:
    script = b"echo \xc3\xa9\n" + CTRL + b".\x03\n" + os.urandom(20_000)  # no escape, no signal

    def program(remote: Remote) -> None:
        remote.wait(lambda remote: b"S" in remote.log, "shut the input")
        remote.output(b"caf\xc3")
        remote.stderr(b"warning: \xff\n")
        remote.output(b"\xa9\n")
        remote.stderr(b"second\n")
        remote.exit(3)

    previous = signal.getsignal(signal.SIGTERM)
    piped = run_piped(tmp_path, script, program)
    assert piped.end == SessionEnd(exit_status=3, choice=None, dropped=False)
    assert piped.remote.sent == script
    assert piped.stdout == b"caf\xc3\xa9\n"
    assert piped.stderr == b"warning: \xff\nsecond\n"
    assert piped.remote.log[-2:] == [b"S", b"K"]
    assert b"w" not in piped.remote.log  # no terminal, no size
    assert signal.getsignal(signal.SIGTERM) is previous


def test_stdin_eof_may_leave_the_input_open(tmp_path: Path) -> None:
    def program(remote: Remote) -> None:
        remote.wait_sent(b"true\n")
        time.sleep(0.2)
        remote.exit(0)

    piped = run_piped(tmp_path, b"true\n", program, stdin_eof_closes=False)
    assert piped.end.exit_status == 0
    assert b"S" not in piped.remote.log


def test_output_to_a_slow_non_blocking_pipe_arrives_whole(tmp_path: Path) -> None:
    data = os.urandom(256 * 1024)
    reader, writer = os.pipe()
    fcntl.fcntl(writer, fcntl.F_SETPIPE_SZ, 4096)
    os.set_blocking(writer, False)  # os.write: partial writes and EAGAIN
    received = bytearray()

    def read_slowly() -> None:
        while chunk := os.read(reader, 1000):
            received.extend(chunk)

    def program(remote: Remote) -> None:
        for start in range(0, len(data), 16384):
            remote.output(data[start : start + 16384])
        remote.exit(0)

    drain = threading.Thread(target=read_slowly, daemon=True)
    drain.start()
    try:
        piped = run_piped(tmp_path, b"", program, stdout_fd=writer)
    finally:
        os.close(writer)
    drain.join(TIMEOUT)
    os.close(reader)
    assert piped.end.exit_status == 0
    assert received == data


def test_a_failing_recording_stops_with_a_notice_and_the_session_goes_on(
    tmp_path: Path,
) -> None:
    class FullDisk(Recorder):
        def write(self, data: bytes) -> None:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def program(remote: Remote) -> None:
        remote.output(b"one\n")
        remote.output(b"two\n")
        remote.exit(0)

    recorder = FullDisk.create(tmp_path / "rec", clock=FakeClock())
    piped = run_piped(tmp_path, b"", program, recorder=recorder)
    recorder.close()
    assert piped.stdout == b"one\ntwo\n"
    assert piped.stderr == b"[cloudrescue] recording stopped: No space left on device\n"


def test_a_dropped_connection_in_pipe_mode(tmp_path: Path) -> None:
    def program(remote: Remote) -> None:
        remote.output(b"partial")
        remote.send(b"r")

    piped = run_piped(tmp_path, b"", program)
    assert piped.end == SessionEnd(exit_status=None, choice=None, dropped=True)
    assert piped.stdout == b"partial"


def test_a_remote_side_gone_before_the_script_is_sent(tmp_path: Path) -> None:
    (tmp_path / "script").write_bytes(b"echo hi\n" * 10_000)
    ours, theirs = seqpacket_pair()
    ours.shutdown(socket.SHUT_RDWR)  # sends fail (EPIPE), and the output ends, with no status
    stdin = os.open(tmp_path / "script", os.O_RDONLY)
    out = os.open(tmp_path / "out", os.O_WRONLY | os.O_CREAT)
    try:
        end = interact(FakeChannel(theirs, send_limit=100), LocalTerminal(stdin, out, out))
    finally:
        for fd in (stdin, out):
            os.close(fd)
        ours.close()
        theirs.close()
    assert end == SessionEnd(exit_status=None, choice=None, dropped=True)


# -- the local terminal's facts, and the channel's shape -----------------------------------------


def test_local_terminal_facts() -> None:
    master, slave = os.openpty()
    reader, writer = os.pipe()
    try:
        fresh = LocalTerminal(slave, slave)
        assert fresh.is_tty() and fresh.size() == (80, 24)  # a pty with no size yet
        assert not fresh.is_foreground_tty()  # not our controlling terminal
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 132, 0, 0))
        assert LocalTerminal(slave, slave).size() == (132, 33)
        assert LocalTerminal(slave, writer).size() == (132, 33)  # stdout a pipe: stdin's
        piped = LocalTerminal(reader, writer)
        assert not piped.is_tty() and not piped.is_foreground_tty()
        assert piped.size() == (80, 24)
        assert LocalTerminal.of_process() == LocalTerminal(0, 1, 2)
    finally:
        for fd in (master, slave, reader, writer):
            os.close(fd)


def test_write_all_writes_everything() -> None:
    reader, writer = os.pipe()
    try:
        write_all(writer, b"\xc3\xa9" * 100)
        assert os.read(reader, 1000) == b"\xc3\xa9" * 100
    finally:
        os.close(reader)
        os.close(writer)


def test_paramiko_channels_carry_stderr_apart_and_the_fake_does_not() -> None:
    assert isinstance(paramiko.Channel(0), StderrChannel)
    ours, theirs = seqpacket_pair()
    with ours, theirs:
        assert not isinstance(FakeChannel(theirs), StderrChannel)
        assert isinstance(FakeStderrChannel(theirs), StderrChannel)
    assert LeaveChoice.UNRESCUE.value == "unrescue"
