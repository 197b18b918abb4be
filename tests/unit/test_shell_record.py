"""``--record FILE`` (issue 11): a typescript and timing file that util-linux ``scriptreplay``
replays, mode 0600, never over an existing file."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cloudrescue.errors import InvalidInputError
from cloudrescue.shell.record import Recorder
from tests.fakes import FakeClock

STARTED = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)


def record(path: Path, chunks: list[tuple[float, bytes]], status: int | None = 0) -> Recorder:
    """A recording of ``chunks``, each one ``seconds`` after the one before."""
    clock = FakeClock()
    recorder = Recorder.create(
        path,
        info={"COMMAND": "cloudrescue shell web-1", "TERM": "xterm"},
        clock=clock,
        now=lambda: STARTED,
    )
    for seconds, data in chunks:
        clock.sleep(seconds)
        recorder.write(data)
    recorder.close(status)
    return recorder


def test_the_typescript_and_its_timing(tmp_path: Path) -> None:
    path = tmp_path / "session"
    recorder = record(path, [(0.5, b"# "), (0.25, b""), (1.0, b"caf\xc3"), (0.125, b"\xa9\r\n")])
    assert recorder.timing_path == tmp_path / "session.timing"
    assert path.read_bytes() == (
        b'Script started on 2024-05-06 07:08:09+00:00 [COMMAND="cloudrescue shell web-1" '
        b'TERM="xterm"]\n'
        b"# caf\xc3\xa9\r\n"
        b'\nScript done on 2024-05-06 07:08:09+00:00 [COMMAND_EXIT_CODE="0"]\n'
    )
    # an empty output is no line; the next one counts its delay from the last line written
    assert recorder.timing_path.read_text() == "0.500000 2\n1.250000 4\n0.125000 3\n"
    assert recorder.replay_command == f"scriptreplay -t {tmp_path}/session.timing {path}"


def test_both_files_are_0600_whatever_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        recorder = record(tmp_path / "session", [(0.1, b"x")], status=None)
    finally:
        os.umask(previous)
    for made in (recorder.path, recorder.timing_path):
        assert stat.S_IMODE(made.stat().st_mode) == 0o600
    assert recorder.path.read_bytes().endswith(b"\nScript done on 2024-05-06 07:08:09+00:00\n")


@pytest.mark.parametrize("existing", ["session", "session.timing"])
def test_an_existing_file_is_never_overwritten(tmp_path: Path, existing: str) -> None:
    (tmp_path / existing).write_text("keep me")
    with pytest.raises(InvalidInputError, match="already exists") as raised:
        Recorder.create(tmp_path / "session")
    assert existing in raised.value.message and raised.value.hint
    assert sorted(p.name for p in tmp_path.iterdir()) == [existing]
    assert (tmp_path / existing).read_text() == "keep me"


def test_a_symlink_is_never_followed(tmp_path: Path) -> None:
    (tmp_path / "session").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(InvalidInputError, match="already exists"):
        Recorder.create(tmp_path / "session")
    assert not (tmp_path / "elsewhere").exists()


def test_a_file_that_cannot_be_made_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"cannot create .*: No such file or directory"):
        Recorder.create(tmp_path / "no-such-dir" / "session")


def test_no_typescript_is_left_when_its_timing_file_cannot_be_made(tmp_path: Path) -> None:
    path = tmp_path / ("s" * 250)  # a name that fits, but not with ".timing" after it
    with pytest.raises(InvalidInputError, match=r"cannot create .*: File name too long"):
        Recorder.create(path)
    assert list(tmp_path.iterdir()) == []


def test_a_header_value_stays_on_its_line(tmp_path: Path) -> None:
    recorder = Recorder.create(tmp_path / "s", info={"COMMAND": 'a"b\nc'}, now=lambda: STARTED)
    recorder.close()
    recorder.close()  # once is enough
    first = recorder.path.read_bytes().splitlines()[0]
    assert first == b'Script started on 2024-05-06 07:08:09+00:00 [COMMAND="a?b?c"]'


def test_the_context_manager_closes(tmp_path: Path) -> None:
    with Recorder.create(tmp_path / "s") as recorder:
        recorder.write(b"x")
    assert recorder.closed


@pytest.mark.skipif(shutil.which("scriptreplay") is None, reason="no scriptreplay (bsdutils)")
def test_scriptreplay_replays_it(tmp_path: Path) -> None:
    chunks = [
        (0.01, b"\x1b[1mroot@web-1\x1b[0m:~# "),
        (0.02, b"caf\xc3"),  # an é split over two outputs
        (0.01, b"\xa9 \xff\xfe\x00\r\n"),  # invalid UTF-8 and a NUL
        (0.01, b"Script done on\r\n"),  # what looks like the footer is output like any other
    ]
    recorder = record(tmp_path / "session", chunks)
    replayed = subprocess.run(
        ["scriptreplay", "-t", str(recorder.timing_path), str(recorder.path)],
        capture_output=True,
        timeout=60,
        check=True,
    ).stdout
    shown = b"".join(data for _, data in chunks)
    assert replayed in (shown, shown + b"\n")  # scriptreplay ends with a newline of its own
