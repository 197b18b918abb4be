"""``processes.spawn_init``: a boot that fails leaves no process behind (a stand-in init)."""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloudrescue.errors import LabError
from cloudrescue.lab import processes
from cloudrescue.lab.ledger import Ledger

from .conftest import require_root

pytestmark = pytest.mark.lab
FAKE_INIT = "tests.lab.fake_init"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def netns() -> Iterator[str]:
    require_root()
    name = f"crlt{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def _running_with(marker: str, timeout: float = 3.0) -> list[str]:
    """Processes whose argv holds ``marker``, once the killed ones are gone (bounded wait)."""
    deadline = time.monotonic() + timeout
    while True:
        found = []
        for proc in Path("/proc").iterdir():
            try:
                argv = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if marker in argv and processes.alive(int(proc.name)):
                found.append(f"{proc.name}: {argv[:100]}")
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


@pytest.mark.parametrize(
    ("report", "error"),
    [
        ({"outcome": "running", "sshd": True, "ports": [2299]}, "did not start listening on"),
        (None, "init exited before booting"),
    ],
    ids=["never-listens", "dies-before-reporting"],
)
def test_a_failed_boot_stops_everything_it_started(
    netns: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    report: dict[str, object] | None,
    error: str,
) -> None:
    monkeypatch.setattr(processes, "LISTEN_TIMEOUT", 1.0)
    monkeypatch.chdir(REPO)  # python -m tests.lab.fake_init
    plan = tmp_path / "fake-plan.json"
    plan.write_text(json.dumps({"report": report, "children": 2}))
    ledger = Ledger(tmp_path / "ledger.jsonl")
    with pytest.raises(LabError, match=error):
        processes.spawn_init(ledger, "t:init", netns, FAKE_INIT, plan, tmp_path / "init.log")
    assert _running_with(str(plan)) == []
    assert [entry for entry in ledger.live() if entry.kind == "process"] == []


def test_a_boot_that_listens_on_its_reported_port_is_kept(
    netns: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The port the init reports is the one waited for (a guest whose sshd uses 2222)."""
    monkeypatch.chdir(REPO)
    plan = tmp_path / "listener-plan.json"
    plan.write_text(json.dumps({"report": {"outcome": "running", "sshd": True, "ports": [2222]}}))
    listener = tmp_path / "listen.py"
    listener.write_text(
        "import socket, sys, time\n"
        "s = socket.socket(); s.bind(('0.0.0.0', 2222)); s.listen()\n"
        "sys.stdout.write('up'); sys.stdout.flush(); time.sleep(300)\n"
    )
    # the stand-in does not listen itself: a listener in the same netns is enough for the check
    server = subprocess.Popen(
        ["ip", "netns", "exec", netns, "python3", str(listener)], stdout=subprocess.PIPE
    )
    try:
        assert server.stdout is not None and server.stdout.read(2) == b"up"
        ledger = Ledger(tmp_path / "ledger.jsonl")
        init = processes.spawn_init(
            ledger, "t:init", netns, FAKE_INIT, plan, tmp_path / "init.log", secret=None
        )
        try:
            assert (init.sshd, init.ports) == (True, (2222,))
        finally:
            init.stop()
    finally:
        server.kill()
        server.wait()
