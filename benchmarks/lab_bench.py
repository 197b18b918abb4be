"""Benchmark of the lab (needs root): ``lab up`` time for 1 and N instances, rescue and
unrescue latency through the nova API (transition delay 0), and memory per instance.

    sudo .venv/bin/python benchmarks/lab_bench.py [--instances 50] [--samples 5] [--cold]

``--cold`` builds the images in an empty temporary cache first (debootstrap: minutes) and
reports cold and warm image times; without it only the warm (cached) time is measured.
Everything is measured in the same run and every lab is brought down again.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import openstack
import paramiko

CLI = str(Path(sys.executable).with_name("cloudrescue"))


def _lab(state: Path, env: dict[str, str], *args: str) -> None:
    command, *rest = args
    subprocess.run(
        [CLI, "lab", command, "--state-dir", str(state), *rest],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _timed(action: Callable[[], object]) -> float:
    start = time.monotonic()
    action()
    return time.monotonic() - start


def _until(check: Callable[[], bool], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("gave up waiting")
        time.sleep(0.05)


def _login(
    address: str, user: str, *, password: str | None = None, key: Path | None = None
) -> bool:
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # noqa: S507 - lab hosts
    try:
        client.connect(
            address,
            username=user,
            password=password,
            key_filename=str(key) if key else None,
            look_for_keys=False,
            allow_agent=False,
            timeout=2,
            banner_timeout=2,
            auth_timeout=2,
        )
        return True
    except (paramiko.SSHException, OSError):
        return False
    finally:
        client.close()


def _lab_pids(state: Path) -> list[int]:
    """The daemon and every process of the lab's instances (in their network namespaces)."""
    config = json.loads((state / "lab.json").read_text())
    pids = [int(config["daemon_pid"])]
    netns = json.loads(
        subprocess.run(["ip", "-j", "netns", "list"], capture_output=True, text=True).stdout or "[]"
    )
    for entry in netns:
        if entry["name"].startswith(f"crl{config['lab_id']}-"):
            found = subprocess.run(
                ["ip", "netns", "pids", entry["name"]], capture_output=True, text=True
            ).stdout
            pids += [int(pid) for pid in found.split()]
    return pids


def _memory_kib(pids: list[int], field: str) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith(field + ":"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def _rescue_latency(
    state: Path, env: dict[str, str], samples: int
) -> tuple[list[float], list[float]]:
    os.environ["OS_CLIENT_CONFIG_FILE"] = env["OS_CLIENT_CONFIG_FILE"]
    conn = openstack.connect(cloud="lab")
    key = state / "lab_key"
    rescues: list[float] = []
    unrescues: list[float] = []
    for server in list(conn.compute.servers())[:samples]:
        address = next(a["addr"] for net in server.addresses.values() for a in net)
        password = secrets.token_urlsafe(16)
        start = time.monotonic()
        conn.compute.rescue_server(server, admin_pass=password)
        _until(lambda s=server: conn.compute.get_server(s.id).status == "RESCUE")
        _until(lambda a=address, p=password: _login(a, "root", password=p))
        rescues.append(time.monotonic() - start)
        start = time.monotonic()
        conn.compute.unrescue_server(server)
        _until(lambda s=server: conn.compute.get_server(s.id).status == "ACTIVE")
        _until(lambda a=address: _login(a, "debian", key=key))
        unrescues.append(time.monotonic() - start)
    return rescues, unrescues


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=50)
    parser.add_argument("--samples", type=int, default=5, help="rescue/unrescue rounds")
    parser.add_argument("--cold", action="store_true", help="also time a cold image build")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lab-bench-"))
    env = {**os.environ, "OS_CLIENT_CONFIG_FILE": str(work / "clouds.yaml")}
    from cloudrescue.lab.rootfs import rescue_image
    from cloudrescue.lab.templates import template

    def images() -> None:
        template("ext4", "debian", lambda message: None)
        rescue_image(lambda message: None)

    def show(label: str, value: str) -> None:
        print(f"{label:<34} {value}", flush=True)

    def lab(state: Path, *argv: str) -> Callable[[], None]:
        return lambda: _lab(state, env, *argv)

    try:
        if args.cold:
            env["CLOUDRESCUE_CACHE_DIR"] = os.environ["CLOUDRESCUE_CACHE_DIR"] = str(work / "cache")
            show("image build (cold)", f"{_timed(images):.1f} s")
        show("image build (warm)", f"{_timed(images):.2f} s")
        one, many, count = work / "one", work / "many", args.instances
        up = _timed(lab(one, "up", "--instances", "1", "--transition-delay", "0"))
        show("lab up, 1 instance", f"{up:.1f} s")
        show("lab down, 1 instance", f"{_timed(lab(one, 'down')):.1f} s")
        up = _timed(lab(many, "up", "--instances", str(count), "--transition-delay", "0"))
        show(f"lab up, {count} instances", f"{up:.1f} s")
        try:
            pids = _lab_pids(many)
            rss, pss = _memory_kib(pids, "Rss") / 1024, _memory_kib(pids, "Pss") / 1024
            show(f"memory, lab ({len(pids)} processes)", f"RSS {rss:.0f} MiB, PSS {pss:.0f} MiB")
            rss = _memory_kib(pids[1:], "Rss") / count / 1024
            pss = _memory_kib(pids[1:], "Pss") / count / 1024
            show("memory per instance", f"RSS {rss:.1f} MiB, PSS {pss:.1f} MiB")
            disk = sum(p.stat().st_blocks * 512 for p in (many / "instances").rglob("*.img"))
            show("disk per instance (sparse copy)", f"{disk / count / 2**20:.0f} MiB")
            rescues, unrescues = _rescue_latency(many, env, args.samples)
            show(
                "rescue (API call -> root SSH)",
                f"median {statistics.median(rescues):.2f} s, "
                f"max {max(rescues):.2f} s ({len(rescues)} samples)",
            )
            show(
                "unrescue (API call -> key SSH)",
                f"median {statistics.median(unrescues):.2f} s, max {max(unrescues):.2f} s",
            )
        finally:
            show(f"lab down, {count} instances", f"{_timed(lab(many, 'down')):.1f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
