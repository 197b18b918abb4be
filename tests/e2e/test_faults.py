"""Faults on every API call of a fix-ssh-keys run, and SSH cut at three moments.

For each call the flow makes (find the instance, mark it, rescue, poll, read the console,
unrescue, unmark), the lab answers a 5xx without doing it, stalls, or does it and loses the
answer. A 503, a 429 or a 413 overLimit is retried by the transport (``cloud/retry.py``), so
the cases that must fail use a 500; a 403 over quota is never retried. Whatever cloudrescue
then does (go on, or stop with one clear error line), afterwards no instance is in RESCUE
without an open journal entry, its authorized_keys is the old file or the new one, and once
restored (`cloudrescue resume NAME` when the run had to stop) it answers on its own sshd.
Faults are global to the lab: the cases run one after the other.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cloudrescue.journal import Journal

from .conftest import E2ELab
from .test_errors import one_error_line
from .test_fix_ssh_keys import status_of
from .test_kill_matrix import guest_keys, logs_in

pytestmark = [pytest.mark.lab, pytest.mark.slow]
SERVER = r"/servers/[0-9a-f-]{36}"
CONSOLE = "os-getConsoleOutput"


@dataclass(frozen=True)
class Fault:
    """One fault: armed from the start, or when the run prints the progress line ``at``;
    with ``until``, cleared when it prints that progress line (which it must print)."""

    name: str
    faults: dict[str, Any]
    at: str | None = None
    until: str | None = None
    cut_ssh: bool = False
    outcomes: tuple[int, ...] = (0,)  # the exit statuses that are right for it
    errors: tuple[str, ...] = field(default=())  # fragments of the error line (when it fails)


def on(path: str, method: str, **extra: Any) -> dict[str, Any]:
    return {"path_regex": path, "method": method, "count": 1, **extra}


FAULTS = [
    Fault("find-5xx", {"api_error": on("/servers/detail", "GET", status=500)}, outcomes=(5,),
          errors=("HTTP 500",)),
    Fault("find-503-retried", {"api_error": on("/servers/detail", "GET")}),
    Fault("find-429-retried", {"api_rate_limit": on("/servers/detail", "GET", retry_after=1)}),
    Fault("find-stall", {"api_stall": on("/servers/detail", "GET", seconds=2)}),
    Fault("find-lost", {"api_lost_response": on("/servers/detail", "GET")}, outcomes=(5,),
          errors=("HTTP 504",)),
    Fault("mark-5xx", {"api_error": on("/metadata$", "POST", status=500)}, outcomes=(5,),
          errors=("HTTP 500",)),
    Fault("mark-over-quota", {"api_over_quota": on("/metadata$", "POST")}, outcomes=(5,),
          errors=("HTTP 403",)),
    Fault("mark-stall", {"api_stall": on("/metadata$", "POST", seconds=2)}),
    Fault("mark-lost", {"api_lost_response": on("/metadata$", "POST")}, outcomes=(5,),
          errors=("HTTP 504",)),
    Fault("rescue-5xx", {"api_error": on("/action$", "POST", action="rescue", status=500)},
          outcomes=(5,), errors=("HTTP 500",)),
    Fault("rescue-429-retried",
          {"api_rate_limit": on("/action$", "POST", action="rescue", retry_after=1)}),
    Fault("rescue-stall", {"api_stall": on("/action$", "POST", action="rescue", seconds=2)}),
    Fault("rescue-lost", {"api_lost_response": on("/action$", "POST", action="rescue")}),
    # a 500 (not retried by the transport): the wait's own loop polls again each second. A
    # 503 is retried with backoff, which can delay seeing RESCUE past the lab's 2 s announce
    # delay: the rescue's block then precedes the baseline, and it is rescued once more
    Fault("poll-5xx", {"api_error": {**on(f"{SERVER}$", "GET", status=500), "count": 3}},
          at="asking the cloud to rescue"),
    Fault("poll-stall", {"api_stall": on(f"{SERVER}$", "GET", seconds=2)},
          at="asking the cloud to rescue"),
    Fault("poll-lost", {"api_lost_response": {**on(f"{SERVER}$", "GET"), "count": 2}},
          at="asking the cloud to rescue"),
    # armed from the start, it hits the read of the console before the rescue request: the
    # rescue goes on without it
    Fault("console-before-5xx", {"api_error": on("/action$", "POST", action=CONSOLE, status=500)}),
    Fault("console-5xx", {"api_error": on("/action$", "POST", action=CONSOLE)},
          at="reading the rescue's host key"),
    Fault("console-stall", {"api_stall": on("/action$", "POST", action=CONSOLE, seconds=1)},
          at="reading the rescue's host key"),
    Fault("console-lost", {"api_lost_response": on("/action$", "POST", action=CONSOLE)},
          at="reading the rescue's host key"),
    Fault("unrescue-5xx", {"api_error": on("/action$", "POST", action="unrescue")},
          at="syncing and unmounting the disk"),
    Fault("unrescue-stall", {"api_stall": on("/action$", "POST", action="unrescue", seconds=2)},
          at="syncing and unmounting the disk"),
    Fault("unrescue-lost", {"api_lost_response": on("/action$", "POST", action="unrescue")},
          at="syncing and unmounting the disk"),
    Fault("unmark-5xx", {"api_error": on("/metadata/", "DELETE")},
          at="leaving rescue: unrescuing"),
    Fault("unmark-stall", {"api_stall": on("/metadata/", "DELETE", seconds=2)},
          at="leaving rescue: unrescuing"),
    Fault("unmark-lost", {"api_lost_response": on("/metadata/", "DELETE")},
          at="leaving rescue: unrescuing"),
    Fault("guest-prints-keys-at-shutdown", {"guest_host_keys_at_shutdown": "fingerprints"}),
    Fault("guest-prints-a-bare-keys-block", {"guest_host_keys_at_shutdown": "keys"}),
    # The rescue's block is printed before the run could read its baseline (what a slow API
    # or a busy machine does): not taken, the instance is rescued once more, the fault gone.
    Fault("rescue-seen-late", {"announce_delay": 0}, until="rescuing "),
    Fault("ssh-cut-at-login", {}, at="logging in to the rescue system", cut_ssh=True),
    Fault("ssh-cut-mid-fix", {}, at="applying the fix", cut_ssh=True, outcomes=(0, 7, 10)),
    Fault("ssh-cut-at-unmount", {}, at="syncing and unmounting the disk", cut_ssh=True),
]


def run_with(lab: E2ELab, name: str, key: Path, fault: Fault) -> subprocess.CompletedProcess[str]:
    """fix-ssh-keys on ``name``, with ``fault`` armed from the start or at its stage."""
    if fault.at is None:
        lab.faults(**fault.faults)
    process = lab.popen("fix-ssh-keys", name, "--key", str(key), "--yes")
    lines: list[str] = []

    def arm(line: str) -> None:
        if fault.until is not None and line.lstrip("→ ").startswith(fault.until):
            lab.clear_faults()
        if fault.at is None or not line.lstrip("→ ").startswith(fault.at):
            return
        if fault.faults:
            lab.faults(**fault.faults)
        if fault.cut_ssh:
            deadline = time.monotonic() + 1.0  # cut whatever is established in the next second
            while time.monotonic() < deadline:
                lab.admin.call("POST", f"/instances/{name}/cut-ssh")
                time.sleep(0.1)

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line)
            arm(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert process.stdout is not None
    stdout = process.stdout.read()  # to the end: the run is over
    process.wait(timeout=60)
    reader.join(timeout=30)
    lab.clear_faults()
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, "".join(lines))


def open_entries(lab: E2ELab, server_id: str) -> list[str]:
    journal = Journal(Path(lab.env["CLOUDRESCUE_STATE_DIR"]))
    return [entry.state for entry in journal.entries() if entry.server_id == server_id]


def settled(lab: E2ELab, name: str) -> str:
    deadline = time.monotonic() + 120
    while (state := status_of(lab, name)).split("/")[1] != "-":
        assert time.monotonic() < deadline, state
        time.sleep(0.2)
    return state


def check(lab: E2ELab, fault: Fault, new_key: Path, restore: Callable[[str], None]) -> None:
    instance = lab.add()
    name, server_id = instance["name"], instance["id"]
    old = guest_keys(lab, server_id)
    new_line = Path(f"{new_key}.pub").read_text().strip()
    result = run_with(lab, name, Path(f"{new_key}.pub"), fault)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode in fault.outcomes, (fault.name, result.returncode, result.stderr)
    if fault.until is not None:
        assert f"→ {fault.until}" in result.stderr, (fault.name, result.stderr)
    if result.returncode != 0:
        error = one_error_line(result)
        assert any(fragment in error for fragment in fault.errors or ("",)), (fault.name, error)
    state = settled(lab, name)
    if state.startswith("RESCUE"):
        assert open_entries(lab, server_id), (fault.name, "in RESCUE, not journalled")
        restore(name)
    assert settled(lab, name) == "ACTIVE/-", fault.name
    now = guest_keys(lab, server_id)
    assert now in (old, old.rstrip("\n") + "\n" + new_line + "\n"), (fault.name, now)
    leftovers = [path for path in lab.disk_files(server_id) if ".cloudrescue-tmp-" in path]
    assert leftovers == [], (fault.name, leftovers)  # no half-written file left behind either
    assert logs_in(instance["address"], lab.key), fault.name
    if "marked in rescue by cloudrescue" in lab.cli("status", name).stdout:  # unmark faults
        resumed = lab.cli("resume", name, "--yes")
        assert resumed.returncode == 0, resumed.stderr
        assert "marked in rescue" not in lab.cli("status", name).stdout
    assert open_entries(lab, server_id) == [], fault.name
    lab.admin.call("DELETE", f"/instances/{server_id}")


def test_every_api_call_and_ssh_faults(lab: E2ELab, tmp_path: Path) -> None:
    new_key = tmp_path / "id_new"
    subprocess.run(["ssh-keygen", "-q", "-N", "", "-t", "ed25519", "-f", str(new_key)], check=True)

    def restore(name: str) -> None:
        resumed = lab.cli("resume", name, "--yes")
        assert resumed.returncode == 0, resumed.stderr

    failures = []
    for fault in FAULTS:
        try:
            check(lab, fault, new_key, restore)
        except Exception as error:  # every fault is reported, not only the first
            lab.clear_faults()
            failures.append(f"{fault.name}: {error!r}")
    assert failures == [], "\n".join(failures)
