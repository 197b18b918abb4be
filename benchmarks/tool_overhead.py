"""cloudrescue's own cost, measured on the lab (run as root).

Prints, from one run:
- `cloudrescue --help` wall time beside `openstack --help` (target: ≤ 0.25x), and a command's
  `--help` beside the peer's (`fix-ssh-keys` and `openstack server rescue`);
- for `fix-ssh-keys` on a lab instance broken with `lost-key`: the total time, the time spent
  waiting for the cloud (its API calls and the sleeps between polls, sshd coming up), and the
  rest — the tool's own overhead per instance (target: ≤ 1.5 s), with the SSH round trips it
  made. The timing goes through the workflow's injected seams (backend, connect, sleep).

Usage: .venv/bin/python benchmarks/tool_overhead.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent


def median_wall(argv: list[str], runs: int) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=False)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


class Stopwatch:
    """Sums the time spent inside wrapped callables, by label."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def wrap(self, label: str, func: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                self.totals[label] = self.totals.get(label, 0.0) + time.perf_counter() - started
                self.counts[label] = self.counts.get(label, 0) + 1

        return timed


@contextmanager
def lab_up(base: Path) -> Iterator[Path]:
    state = base / "lab"
    env = {**os.environ, "OS_CLIENT_CONFIG_FILE": str(base / "clouds.yaml")}
    subprocess.run(
        [
            str(BIN / "cloudrescue"),
            "lab",
            "up",
            "--state-dir",
            str(state),
            "--instances",
            "0",
            "--transition-delay",
            "0",
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    os.environ["OS_CLIENT_CONFIG_FILE"] = env["OS_CLIENT_CONFIG_FILE"]
    os.environ["CLOUDRESCUE_STATE_DIR"] = str(base / "state")
    try:
        yield state
    finally:
        subprocess.run(
            [str(BIN / "cloudrescue"), "lab", "down", "--state-dir", str(state)],
            env=env,
            check=False,
            capture_output=True,
        )


class TimedBackend:
    """A cloud backend that times every call it passes on (the cloud's share of a run)."""

    def __init__(self, backend: Any, watch: Stopwatch) -> None:
        self._backend = backend
        self._watch = watch

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._backend, name)
        return self._watch.wrap("cloud API calls", value) if callable(value) else value


class CountingHost:
    """The rescue's SSH host, counting and timing the commands sent to it."""

    def __init__(self, host: Any, watch: Stopwatch) -> None:
        self._host = host
        self.run = watch.wrap("ssh round trips", host.run)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._host, name)


def measure_fix(state: Path) -> dict[str, float]:
    from cloudrescue.cloud.openstack import OpenStackCloud
    from cloudrescue.events import SilentEvents
    from cloudrescue.journal import Journal
    from cloudrescue.lab.lifecycle import admin
    from cloudrescue.phase import DiskChoice
    from cloudrescue.playbook import catalog
    from cloudrescue.playbook.params import resolve
    from cloudrescue.playbook.runner import run_playbook
    from cloudrescue.remote.ssh import connect
    from cloudrescue.rescue import RescueSettings, RescueWorkflow

    client = admin(state)
    name = f"bench-{time.monotonic_ns()}"
    client.add({"name": name})
    client.break_instance(name, "lost-key")

    watch = Stopwatch()
    timed_connect = watch.wrap("ssh connect (incl. sshd start)", connect)

    def counting_connect(*args: Any, **kwargs: Any) -> Any:
        return CountingHost(timed_connect(*args, **kwargs), watch)

    backend = TimedBackend(OpenStackCloud("lab"), watch)
    server = backend.find_server(name)
    workflow = RescueWorkflow(
        backend,  # type: ignore[arg-type]
        Journal(),
        SilentEvents(),
        RescueSettings(poll_interval=0.2),
        connect=counting_connect,
        sleep=watch.wrap("sleeping between polls", time.sleep),
    )
    playbook = catalog.load_shipped("fix-ssh-keys")

    def no_secret(name: str, spec: Any) -> Any:
        raise AssertionError(f"fix-ssh-keys has no secret {name}")

    values = resolve(playbook, {"key": [str(state / "lab_key.pub")]}, no_secret)

    started = time.perf_counter()
    run_playbook(workflow, server, playbook, values, dry_run=False, disk=DiskChoice())
    total = time.perf_counter() - started
    figures = {"total": total, **watch.totals}
    figures["ssh round trips (count)"] = float(watch.counts.get("ssh round trips", 0))
    waits = sum(
        watch.totals.get(k, 0.0)
        for k in ("cloud API calls", "sleeping between polls", "ssh connect (incl. sshd start)")
    )
    figures["tool overhead (total - waits)"] = total - waits
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    ours = median_wall([str(BIN / "cloudrescue"), "--help"], args.runs)
    peer = median_wall([str(BIN / "openstack"), "--help"], args.runs)
    print(f"cloudrescue --help  {ours:6.3f} s (median of {args.runs})")
    print(f"openstack --help    {peer:6.3f} s (median of {args.runs})")
    print(f"ratio               {ours / peer:6.2f}  (target <= 0.25)")
    ours_sub = median_wall([str(BIN / "cloudrescue"), "fix-ssh-keys", "--help"], args.runs)
    peer_sub = median_wall([str(BIN / "openstack"), "server", "rescue", "--help"], args.runs)
    print(f"cloudrescue fix-ssh-keys --help    {ours_sub:6.3f} s")
    print(f"openstack server rescue --help     {peer_sub:6.3f} s")
    print(f"ratio                              {ours_sub / peer_sub:6.2f}")
    with (
        tempfile.TemporaryDirectory(prefix="cloudrescue-bench-") as base,
        lab_up(Path(base)) as state,
    ):
        figures = measure_fix(state)
    print("fix-ssh-keys on one lab instance (transition delay 0):")
    for label, value in figures.items():
        unit = "" if "count" in label else " s"
        print(f"  {label:40s} {value:8.3f}{unit}")
    print("  target: tool overhead <= 1.5 s")


if __name__ == "__main__":
    main()
