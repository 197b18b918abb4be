"""How well ``cloudrescue diagnose`` names the cure of each lab break (needs root).

    sudo .venv/bin/python benchmarks/diagnose_accuracy.py [--family debian|rhel]

A lab of its own (brought down at the end) boots one instance per break scenario and a
healthy one, breaks them, and runs ``cloudrescue diagnose NAME -f json`` on each as a user
would, one at a time. It prints, per scenario, the playbook that cures it, the top finding,
and the time the diagnosis took (the whole command, and the diagnosis as it reports it:
without Python's start-up and imports); then the confusion matrix (scenario x top finding)
and the accuracy over issue 12's ten scenarios.

Then the deep mode (``diagnose --deep --yes``: one rescue each, the playbooks that declare deep
checks run in check mode on the disk mounted read-only, then the passwords and cloud-init's
state read), on the same instances, after the no-rescue pass, in the same tables.
``DEEP_ARGS`` is its arguments (None: its column says "not measured").
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CLI = str(Path(sys.executable).with_name("cloudrescue"))
HEALTHY = "healthy"
NONE = "none"  # no finding
CURES: dict[str, str] = {  # scenario -> the playbook that cures it (what the top should name)
    "lost-key": "fix-ssh-keys",
    "ssh-symlink": "fix-ssh-keys",
    "bad-perms": "fix-ssh-keys",
    "sshd-config": "fix-sshd-config",
    "firewall": "fix-firewall",
    "fstab": "fix-fstab",
    "root-password": "reset-password",
    "disk-full": "disk-full",
    "network": "fix-network",
    "sudoers": "fix-sudoers",
    "authorized-keys-file": "fix-ssh-keys",  # not one of issue 12's ten
    HEALTHY: NONE,
}
ISSUE_SCENARIOS = tuple(list(CURES)[:10])
NO_RESCUE_ARGS: tuple[str, ...] = ()
DEEP_ARGS: tuple[str, ...] | None = ("--deep", "--yes")
"""The deep mode's column: ``diagnose``'s arguments for it; None: the column says "not
measured"."""


@dataclass(frozen=True)
class Measure:
    """One diagnosis: its top finding's playbook (``NONE``: no finding; the key of a finding
    without playbook), the command's wall time and the diagnosis's own."""

    top: str
    wall: float
    seconds: float


def _run(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], env=env, capture_output=True, text=True, check=check)


def _top(record: dict[str, Any]) -> str:
    findings = record["findings"]
    if not findings:
        return NONE
    first = findings[0]
    return str(first["playbook"] or first["cause"])


def measure(env: dict[str, str], name: str, key: Path, mode: Sequence[str]) -> Measure:
    """``cloudrescue diagnose NAME`` with ``mode``'s arguments, timed."""
    start = time.monotonic()
    result = _run(env, "diagnose", name, "--key", str(key), "-f", "json", *mode, check=False)
    wall = time.monotonic() - start
    if result.returncode != 0:
        return Measure(f"error: {result.stderr.strip()}", wall, 0.0)
    record = json.loads(result.stdout)
    return Measure(_top(record), wall, float(record["seconds"]))


def lab_instances(state: Path, family: str, tag: str) -> dict[str, str]:
    """One instance per scenario, booted and broken in parallel: scenario -> name."""
    from cloudrescue.lab.lifecycle import admin

    client = admin(state)
    names = {scenario: f"{tag}-{scenario}" for scenario in CURES}
    with ThreadPoolExecutor(len(names)) as pool:
        list(pool.map(lambda name: client.add({"name": name, "family": family}), names.values()))
        broken = [scenario for scenario in names if scenario != HEALTHY]
        list(pool.map(lambda scenario: client.break_instance(names[scenario], scenario), broken))
    return names


def table(mode: str, results: dict[str, Measure | None]) -> list[str]:
    """The per-scenario lines of one mode."""
    lines = [f"{mode}:", f"  {'scenario':22} {'cure':16} {'top finding':18} right  seconds"]
    for scenario, cure in CURES.items():
        found = results[scenario]
        if found is None:
            lines.append(f"  {scenario:22} {cure:16} not measured")
            continue
        right = "yes" if found.top == cure else "no"
        lines.append(
            f"  {scenario:22} {cure:16} {found.top[:18]:18} {right:5}  "
            f"{found.wall:.2f} (diagnosis {found.seconds:.2f})"
        )
    return lines


def confusion(results: dict[str, Measure | None]) -> list[str]:
    """The confusion matrix: a row per scenario, a column per top finding seen."""
    columns = [*sorted({m.top for m in results.values() if m is not None} - {NONE}), NONE]
    width = max(len(c) for c in columns)
    head = "  " + " " * 22 + " ".join(f"{c:>{width}}" for c in columns)
    rows = [head]
    for scenario in CURES:
        found = results[scenario]
        cells = [("1" if found is not None and found.top == c else ".") for c in columns]
        rows.append(f"  {scenario:22}" + " ".join(f"{cell:>{width}}" for cell in cells))
    return rows


def accuracy(results: dict[str, Measure | None]) -> str:
    measured = [s for s in ISSUE_SCENARIOS if results[s] is not None]
    if not measured:
        return "not measured"
    right = [s for s in measured if (found := results[s]) is not None and found.top == CURES[s]]
    healthy = results[HEALTHY]
    verdict = "no finding" if healthy is not None and healthy.top == NONE else (
        f"WRONG: {healthy.top if healthy else 'not measured'}"
    )
    return f"{len(right)}/{len(measured)} of issue 12's scenarios; healthy instance: {verdict}"


def report(modes: dict[str, dict[str, Measure | None]]) -> None:
    for mode, results in modes.items():
        print("\n".join(table(mode, results)))
        if all(found is None for found in results.values()):
            print(f"  {mode}: not measured (DEEP_ARGS is None: the deep mode is not built yet)\n")
            continue
        print("  confusion matrix (rows: scenario, columns: top finding):")
        print("\n".join(confusion(results)))
        times = [m.wall for m in results.values() if m is not None]
        print(f"  accuracy: {accuracy(results)}")
        print(f"  time: {min(times):.2f} to {max(times):.2f} s a diagnosis "
              f"(mean {sum(times) / len(times):.2f} s)\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", choices=("debian", "rhel"), default="debian")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("diagnose_accuracy: needs root (the lab)")
    with tempfile.TemporaryDirectory(prefix="diagnose-bench-") as tmp:
        base = Path(tmp)
        state = base / "lab"
        (base / "home").mkdir()
        env = {
            **os.environ,
            "OS_CLIENT_CONFIG_FILE": str(base / "clouds.yaml"),
            "OS_CLOUD": "lab",
            "CLOUDRESCUE_STATE_DIR": str(base / "state"),
            "HOME": str(base / "home"),
        }
        _run(env, "lab", "up", "--state-dir", str(state), "--instances", "0",
             "--transition-delay", "0.2")
        try:
            names = lab_instances(state, args.family, "bench")
            key = state / "lab_key.pub"
            modes: dict[str, dict[str, Measure | None]] = {}
            for mode, extra in (("no rescue", NO_RESCUE_ARGS), ("--deep", DEEP_ARGS)):
                if extra is None:
                    modes[mode] = dict.fromkeys(CURES)
                    continue
                # one at a time: the times are the command's own, not a share of the CPUs
                modes[mode] = {s: measure(env, names[s], key, extra) for s in CURES}
            print(f"diagnose accuracy on the lab ({args.family} instances)\n")
            report(modes)
        finally:
            _run(env, "lab", "down", "--state-dir", str(state), check=False)


if __name__ == "__main__":
    main()
