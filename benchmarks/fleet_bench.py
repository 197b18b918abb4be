"""`cloudrescue fleet fix-ssh-keys` on the lab (run as root): how it scales, beside the peer.

Prints, from one run on one lab (the default transition delay; the rescue prints its host keys
``--announce-delay`` seconds after RESCUE, 10 by default, as a real rescue's cloud-init does,
where the lab's own default of 2 s compresses it):
- the wall time of `fleet fix-ssh-keys` on 1, 10 and 50 instances broken with `lost-key`
  (`--concurrency` = the fleet's size), once for each ``--slow-start`` value, capped at the
  size (1, the default ramp; 8; 50, no ramp), and the ratio 50 : 1 (target: <= 3);
- the peer, measured in the same run: a serial shell loop of single `cloudrescue fix-ssh-keys`
  over the same 10 instances (what an operator writes without a fleet command), and the
  speed-up of the fleet command (target: >= 5x);
- the API requests per instance of each run, counted in the lab API's request log (target: no
  more than a single run's), and the peak RSS of the cloudrescue process (wait4's ru_maxrss).

The lab is its own (``lab up --state-dir WORKDIR/lab``, taken down at the end, whatever
happens), with its own clouds.yaml and journal (``WORKDIR/clouds.yaml``, ``WORKDIR/state``).
WORKDIR is a temporary directory removed at the end, or ``--workdir DIR``, kept (the lab
down) with each fleet run's ``--report`` (``fleet-xN.json``: per instance, its result, error
and seconds per stage) and the lab API's request log (``daemon.log``), so that ``fleet show
RUN`` can still be read with ``OS_CLIENT_CONFIG_FILE=DIR/clouds.yaml
CLOUDRESCUE_STATE_DIR=DIR/state``. A partial fleet run (exit 12) prints its run ID and why its
instances failed.

Usage: .venv/bin/python benchmarks/fleet_bench.py [--sizes 1,10,50] [--slow-starts 1,8,50]
       [--serial 10] [--announce-delay 10] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

BIN = Path(sys.executable).parent
REQUEST = re.compile(r" cloudrescue\.lab\.api: (GET|POST|PUT|DELETE) /(compute|identity|image)")


def cli(env: dict[str, str], *args: str, check: bool = True) -> tuple[float, int, int]:
    """Run ``cloudrescue ARGS``: (wall seconds, peak RSS in MiB, exit code). Exit 12 (some
    instances failed) is printed, not fatal: the figures of the others still count."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [str(BIN / "cloudrescue"), *args], env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    stderr = process.stderr.read().decode() if process.stderr else ""
    code = os.waitstatus_to_exitcode(status)
    if code == 12:
        print(f"(partial) {stderr.strip().splitlines()[-2] if stderr.strip() else ''}")
    elif check and code != 0:
        raise SystemExit(f"cloudrescue {' '.join(args)} failed: {stderr.strip()[-400:]}")
    return wall, usage.ru_maxrss // 1024, code


def why_failed(env: dict[str, str]) -> None:
    """Print the newest fleet run's ID and its failures, counted by error (from the journal)."""

    def read(*args: str) -> list[dict[str, object]]:
        done = subprocess.run([str(BIN / "cloudrescue"), *args, "-f", "json"], env=env,
                              check=True, capture_output=True, text=True)  # fmt: skip
        rows: list[dict[str, object]] = json.loads(done.stdout)
        return rows

    try:
        fleet_id = str(read("fleet", "list")[0]["fleet_id"])
        members = read("fleet", "show", fleet_id)
    except (subprocess.CalledProcessError, ValueError, LookupError) as unread:
        print(f"  (the journal could not be read: {unread})")
        return
    results = Counter(str(member["result"]) for member in members)
    print(f"  fleet run {fleet_id}: {', '.join(f'{k}={v}' for k, v in sorted(results.items()))}")
    errors = Counter(  # the same error of different instances counted once
        f"{member['exit_status']}: {str(member['error']).replace(str(member['instance']), 'NAME')}"
        for member in members
        if member["result"] == "failed"
    )
    for error, count in errors.most_common():
        print(f"  {count} x {error[:300]}")
    failed = [str(member["position"]) for member in members if member["result"] == "failed"]
    if failed:
        print(f"  failed at positions {', '.join(failed)}")


@contextlib.contextmanager
def workdir(path: str | None) -> Iterator[Path]:
    """``path`` (made if need be, kept), or a temporary directory (removed)."""
    if path is not None:
        Path(path).mkdir(parents=True, exist_ok=True)
        yield Path(path).resolve()
        return
    with tempfile.TemporaryDirectory(prefix="cloudrescue-fleet-bench-") as base:
        yield Path(base)


def requests(log: Path, since: int) -> tuple[int, int]:
    """API requests logged after byte ``since``, and the log's end."""
    data = log.read_bytes()
    return len(REQUEST.findall(data[since:].decode(errors="replace"))), len(data)


def broken_fleet(state: Path, env: dict[str, str], count: int) -> tuple[str, list[str]]:
    from cloudrescue.lab.lifecycle import admin

    client = admin(state)
    tag = f"b{uuid.uuid4().hex[:6]}"
    names = [f"{tag}-{n}" for n in range(1, count + 1)]
    with ThreadPoolExecutor(min(count, 8)) as pool:
        list(pool.map(lambda name: client.add({"name": name, "tags": [tag]}), names))
        list(pool.map(lambda name: client.break_instance(name, "lost-key"), names))
    return tag, names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1,10,50")
    parser.add_argument("--slow-starts", default="1,8,50",
                        help="--slow-start values to run (each capped at the size: 50 is no ramp)")
    parser.add_argument("--serial", type=int, default=10)
    parser.add_argument("--announce-delay", default="10", help="the lab's, in seconds")
    parser.add_argument("--workdir", default=None, help="keep the lab's files, journal, reports")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    firsts = [int(first) for first in args.slow_starts.split(",")]
    with workdir(args.workdir) as base:
        state = Path(base, "lab")
        env = {
            **os.environ,
            "OS_CLIENT_CONFIG_FILE": str(Path(base, "clouds.yaml")),
            "OS_CLOUD": "lab",
            "CLOUDRESCUE_STATE_DIR": str(Path(base, "state")),
        }
        os.environ.update(env)
        subprocess.run([str(BIN / "cloudrescue"), "lab", "up", "--state-dir", str(state),
                        "--instances", "0", "--announce-delay", args.announce_delay],
                       env=env, check=True, capture_output=True)  # fmt: skip
        try:
            key = str(state / "lab_key.pub")
            log = state / "daemon.log"
            rows: list[tuple[str, int, int, float, float, int]] = []  # label, size, -s, ...
            runs = [(n, first) for n in sizes for first in sorted({min(f, n) for f in firsts})]
            for size, first in runs:
                tag, _ = broken_fleet(state, env, size)
                _, mark = requests(log, 0)
                report = str(Path(base, f"fleet-x{size}-s{first}.json"))
                wall, rss, code = cli(env, "fleet", "fix-ssh-keys", "--tag", tag, "--key", key,
                                      "--yes", "-q", "--concurrency", str(size),
                                      "--slow-start", str(first), "--report", report)  # fmt: skip
                count, _ = requests(log, mark)
                if code == 12:
                    why_failed(env)
                label = f"fleet fix-ssh-keys x{size}" + (f" -s {first}" if size > 1 else "")
                rows.append((label, size, first, wall, count / size, rss))
            _, names = broken_fleet(state, env, args.serial)
            _, mark = requests(log, 0)
            started, peak = time.perf_counter(), 0
            for name in names:
                _, rss, _ = cli(env, "fix-ssh-keys", name, "--key", key, "--yes", "-q")
                peak = max(peak, rss)
            serial = time.perf_counter() - started
            count, _ = requests(log, mark)
            rows.append((f"serial fix-ssh-keys x{args.serial}", args.serial, 0, serial,
                         count / args.serial, peak))  # fmt: skip
        finally:
            if args.workdir is not None and (state / "daemon.log").exists():  # lab down drops it
                shutil.copyfile(state / "daemon.log", Path(base, "daemon.log"))
            subprocess.run([str(BIN / "cloudrescue"), "lab", "down", "--state-dir", str(state)],
                           env=env, check=False, capture_output=True)  # fmt: skip
    print(f"lab: rescue host keys {args.announce_delay} s after RESCUE; load average "
          f"{os.getloadavg()[0]:.1f} at the end")  # fmt: skip
    print(f"{'run':32s} {'wall s':>8s} {'s/inst':>7s} {'req/inst':>9s} {'peak MiB':>9s}")
    for label, size, _, wall, per_instance, rss in rows:
        print(f"{label:32s} {wall:8.1f} {wall / size:7.1f} {per_instance:9.1f} {rss:9d}")
    fleet = rows[:-1]
    for first in firsts:
        walls = {size: wall for _, size, used, wall, _, _ in fleet if used == min(first, size)}
        if 1 in walls and max(walls) > 1:
            print(f"--slow-start {first}: x{max(walls)} / x1 wall time "
                  f"{walls[max(walls)] / walls[1]:.2f} (target <= 3)", end="")  # fmt: skip
            if args.serial in walls:
                print(f"; serial x{args.serial} / fleet x{args.serial}: "
                      f"{serial / walls[args.serial]:.1f}x (target >= 5)", end="")  # fmt: skip
            print()


if __name__ == "__main__":
    main()
