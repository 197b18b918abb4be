"""The processes of an instance: its init (then sshd) in its own namespaces.

``nsenter --net=<netns> unshare --mount --pid --uts --ipc --fork --kill-child`` runs the init
module as pid 1 of a new pid namespace; killing the outer ``unshare`` kills that pid 1 and with
it every process and mount of the instance. That pid 1 enters the system's root with
``pivot_root``, in a mount namespace of its own (``init_common.enter_root``): the outer
``unshare`` keeps the one the init mounted the system's tree in. The init reports its outcome
on a pipe (one JSON line: outcome, whether sshd starts, the ports it will listen on) before it
execs the disk's own sshd; the runtime waits until one of those ports listens. A boot that
fails on the way (no report, sshd never listening) is killed with everything it started.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from cloudrescue.errors import LabError
from cloudrescue.lab.consolelog import HostKeys
from cloudrescue.lab.ledger import Entry, Ledger
from cloudrescue.lab.netns import NETNS_DIR

BOOT_TIMEOUT = 120.0
LISTEN_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0
TCP_LISTEN = "0A"


@dataclass
class InitProcess:
    """A running init (the outer ``unshare``) and what it reported.

    ``popen`` is None for an init adopted from the ledger (started by an earlier daemon).
    """

    pid: int
    popen: subprocess.Popen[bytes] | None
    outcome: str = ""
    sshd: bool = False
    ports: tuple[int, ...] = (22,)
    host_keys: HostKeys | None = None  # an announcement the init left to the runtime

    def stop(self) -> None:
        """Kill the init (its namespaces and everything in them go with it); reap it."""
        if self.popen is not None:
            kill(self.popen)
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        deadline = time.monotonic() + STOP_TIMEOUT
        while alive(self.pid) and time.monotonic() < deadline:
            time.sleep(0.02)


def adopt(entry: Entry | None) -> InitProcess | None:
    """The init a ledger entry records, if that very process still runs."""
    if entry is None:
        return None
    pid = entry.data.get("pid")
    if not isinstance(pid, int) or start_time(pid) != entry.data.get("start") or not alive(pid):
        return None
    return InitProcess(pid, None, "running", True)


def start_time(pid: int) -> int | None:
    """Start time (clock ticks since boot) of ``pid``; None when it does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def spawn_init(
    ledger: Ledger,
    key: str,
    netns: str,
    module: str,
    plan: Path,
    log: Path,
    *,
    secret: bytes | None = None,
) -> InitProcess:
    """Start ``python -m <module> <plan>`` in new namespaces inside ``netns``; wait for its report.

    ``secret`` is written to the init's stdin (never to argv, files or logs).
    """
    ledger.record("process", key, pid=None)
    read_end, write_end = os.pipe()
    argv = [
        "nsenter",
        f"--net={NETNS_DIR / netns}",
        "--",
        "unshare",
        "--mount",
        "--pid",
        "--uts",
        "--ipc",
        "--fork",
        "--kill-child",
        "--propagation",
        "private",
        "--",
        sys.executable,
        "-m",
        module,
        str(plan),
        str(write_end),
    ]
    with open(log, "ab") as log_file:
        popen = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=log_file,
            stderr=log_file,
            pass_fds=(write_end,),
            start_new_session=True,
        )
    os.close(write_end)
    ledger.record("process", key, pid=popen.pid, start=start_time(popen.pid))
    assert popen.stdin is not None
    try:
        try:
            if secret is not None:
                popen.stdin.write(secret)
            popen.stdin.close()
            report = _read_report(read_end, popen, log)
        finally:
            os.close(read_end)
        process = _process(popen, report)
        if process.sshd:
            wait_listening(popen.pid, process.ports)
    except BaseException:
        kill(popen)  # a boot that fails leaves nothing running: its namespaces go with it
        ledger.forget("process", key)
        raise
    return process


def _process(popen: subprocess.Popen[bytes], report: dict[str, object]) -> InitProcess:
    ports = report.get("ports")
    keys = report.get("host_keys")
    return InitProcess(
        popen.pid,
        popen,
        str(report["outcome"]),
        bool(report.get("sshd")),
        tuple(int(p) for p in ports) if isinstance(ports, list) and ports else (22,),
        HostKeys.from_json(keys) if isinstance(keys, dict) else None,
    )


def _read_report(fd: int, popen: subprocess.Popen[bytes], log: Path) -> dict[str, object]:
    data = b""
    deadline = time.monotonic() + BOOT_TIMEOUT
    while b"\n" not in data:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise LabError(f"init did not report within {BOOT_TIMEOUT:.0f}s (see {log})")
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:
                tail = log.read_text(errors="replace").strip().splitlines()[-3:]
                raise LabError(f"init exited before booting: {' | '.join(tail)}")
            data += chunk
    report: dict[str, object] = json.loads(data.split(b"\n", 1)[0])
    return report


def _listening(pid: int, port: int) -> bool:
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except FileNotFoundError:
            return False
        for line in lines:
            fields = line.split()
            if fields[3] == TCP_LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
                return True
    return False


def wait_listening(pid: int, ports: tuple[int, ...]) -> None:
    """Wait until something in ``pid``'s network namespace listens on one of TCP ``ports``."""
    deadline = time.monotonic() + LISTEN_TIMEOUT
    while not any(_listening(pid, port) for port in ports):
        if time.monotonic() > deadline or not alive(pid):
            listed = ", ".join(str(port) for port in ports)
            raise LabError(
                f"sshd did not start listening on port {listed} within {LISTEN_TIMEOUT:g}s"
            )
        time.sleep(0.02)


def kill(popen: subprocess.Popen[bytes]) -> None:
    """Kill an init (its namespaces and everything in them go with it) and reap it."""
    if popen.poll() is None:
        popen.kill()
    popen.wait()


def children(pid: int) -> list[int]:
    """Direct children of ``pid``."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except FileNotFoundError:
            continue
    return found


def _command_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except (FileNotFoundError, ProcessLookupError):
        return ""


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children first)."""
    found: list[int] = []
    queue = children(pid)
    while queue:
        current = queue.pop(0)
        found.append(current)
        queue += children(current)
    return found


def cut_sessions(init_pid: int) -> int:
    """Kill every SSH session under the sshd run by ``init_pid``; return how many.

    Only sshd's sessions, as a cut network would end them: what the sessions started that
    lives on by itself (a daemon, a tmux server: orphans, adopted by the sshd that is the
    system's pid 1) is left alone.
    """
    listeners = children(init_pid)
    sessions = [
        child
        for listener in listeners
        for child in children(listener)
        if _command_name(child) == "sshd"
    ]
    for session in sessions:
        for pid in [session, *descendants(session)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return len(sessions)


def alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def undo_process(entry: Entry) -> None:
    """Ledger undo: kill the recorded process if it is still the same process."""
    pid = entry.data.get("pid")
    if not isinstance(pid, int) or start_time(pid) != entry.data.get("start"):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + STOP_TIMEOUT
    while alive(pid) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG) != (0, 0):
                return
        time.sleep(0.02)
