"""Look at the rescue system's network and the instance disk's speed (nothing is changed).

``network_diagnostics``: addresses and routes (``ip -j``), DNS servers (``/etc/resolv.conf``)
and a ping of the default gateway, from the rescue system, which shares the instance's port.
``disk_benchmark``: sequential read (``dd iflag=direct``) and random 4 KiB reads (``fio``
read-only when the rescue has it, else a ``dd`` sampler) of the instance's disk; a write test
only when asked, on a scratch file of the mounted guest filesystem, removed afterwards.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass, field

from cloudrescue.disks.commands import last_line, run_tool
from cloudrescue.disks.session import MountedGuest
from cloudrescue.errors import DiskError, InvalidInputError
from cloudrescue.fixes.common import rescue_has
from cloudrescue.remote.base import Host

MB = 1_000_000
BLOCK = 4096
SAMPLER = (
    'dev=$1; shift; start=$(date +%s%N); for block in "$@"; do '
    'dd if="$dev" of=/dev/null bs=4096 count=1 skip="$block" iflag=direct status=none || exit 1; '
    "done; end=$(date +%s%N); echo $((end - start))"
)
_PING_LOSS = re.compile(r"(\d+) packets transmitted, (\d+) (?:packets )?received")
_PING_RTT = re.compile(r"= [\d.]+/([\d.]+)/")
_DD_COPIED = re.compile(r"^(\d+) bytes .* copied, ([\d.e+-]+) s", re.MULTILINE)


@dataclass(frozen=True)
class InterfaceAddresses:
    """One interface of the rescue system and its addresses (``addr/prefix``)."""

    name: str
    state: str
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class PingResult:
    """Pinging one address."""

    target: str
    sent: int
    received: int
    average_ms: float | None


@dataclass
class NetworkReport:
    """The rescue system's view of the instance's network."""

    interfaces: list[InterfaceAddresses]
    routes: list[str]
    gateway: str | None
    dns: list[str]
    gateway_ping: PingResult | None
    problems: list[str] = field(default_factory=list)


def _json(host: Host, argv: list[str]) -> list[dict[str, object]]:
    result = run_tool(host, argv, check=False)
    try:
        data = json.loads(result.stdout) if result.ok else []
    except json.JSONDecodeError:
        return []
    return [item for item in data if isinstance(item, dict)] if isinstance(data, list) else []


def _interfaces(host: Host) -> list[InterfaceAddresses]:
    found = []
    for link in _json(host, ["ip", "-j", "addr", "show"]):
        infos = link.get("addr_info")
        addresses = tuple(
            f"{info.get('local')}/{info.get('prefixlen')}"
            for info in (infos if isinstance(infos, list) else [])
            if isinstance(info, dict)
        )
        found.append(
            InterfaceAddresses(str(link.get("ifname")), str(link.get("operstate")), addresses)
        )
    return found


def parse_ping(target: str, output: str) -> PingResult:
    """``ping -c`` summary lines as a result."""
    loss = _PING_LOSS.search(output)
    rtt = _PING_RTT.search(output)
    sent, received = (int(loss.group(1)), int(loss.group(2))) if loss else (0, 0)
    return PingResult(target, sent, received, float(rtt.group(1)) if rtt else None)


def network_diagnostics(host: Host, *, count: int = 3) -> NetworkReport:
    """Addresses, routes, DNS and a gateway ping, as the rescue system sees them."""
    problems: list[str] = []
    interfaces = _interfaces(host)
    routes = _json(host, ["ip", "-j", "route", "show"])
    lines = [
        " ".join(str(route[key]) for key in ("dst", "gateway", "dev") if key in route)
        for route in routes
    ]
    gateway = next(
        (str(r["gateway"]) for r in routes if r.get("dst") == "default" and "gateway" in r), None
    )
    try:
        resolv = host.read_file("/etc/resolv.conf").decode("utf-8", "replace")
    except OSError:
        resolv = ""
        problems.append("no /etc/resolv.conf on the rescue system")
    dns = [w[1] for w in (line.split() for line in resolv.splitlines()) if w[:1] == ["nameserver"]]
    if not any(i.addresses and i.name != "lo" for i in interfaces):
        problems.append("no address on any interface but lo")
    ping = None
    if gateway is None:
        problems.append("no default route")
    elif not rescue_has(host, "ping"):
        problems.append("the rescue system has no ping: gateway not tested")
    else:
        argv = ["ping", "-c", str(count), "-W", "2", "-n", gateway]
        ping = parse_ping(gateway, run_tool(host, argv, check=False, timeout=60).stdout)
        if ping.received == 0:
            problems.append(f"the gateway {gateway} does not answer ping")
    return NetworkReport(interfaces, lines, gateway, dns, ping, problems)


# -- disk speed --------------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchmarkReport:
    """Measured speeds of the instance's disk."""

    device: str
    sequential_read_mb_s: float
    random_read_iops: float
    random_method: str
    sequential_write_mb_s: float | None = None

    def lines(self) -> list[str]:
        """Human-readable results, one a line."""
        text = [
            f"{self.device}: sequential read {self.sequential_read_mb_s:.1f} MB/s",
            f"{self.device}: random 4 KiB read {self.random_read_iops:.0f} IOPS "
            f"({self.random_method})",
        ]
        if self.sequential_write_mb_s is not None:
            text.append(f"guest filesystem: sequential write {self.sequential_write_mb_s:.1f} MB/s")
        return text


def _dd_speed(output: str) -> float:
    match = _DD_COPIED.search(output)
    if match is None or float(match.group(2)) <= 0:
        raise DiskError(f"cannot read dd's result: {output.strip()[-200:]}")
    return int(match.group(1)) / float(match.group(2)) / MB


def _device_size(host: Host, device: str) -> int:
    result = run_tool(host, ["blockdev", "--getsize64", device], check=False)
    if not result.ok or not result.stdout.strip().isdigit():
        raise DiskError(f"cannot get the size of {device}: {last_line(result)}")
    return int(result.stdout.strip())


def _random_reads(host: Host, device: str, size: int, samples: int) -> tuple[float, str]:
    if rescue_has(host, "fio"):
        argv = ["fio", "--name=randread", f"--filename={device}", "--readonly",
                "--rw=randread", "--bs=4k", "--direct=1", "--ioengine=psync", "--runtime=10",
                "--time_based", "--output-format=json"]  # fmt: skip
        result = run_tool(host, argv, timeout=120)
        jobs = json.loads(result.stdout).get("jobs", [])
        return float(jobs[0]["read"]["iops"]), "fio, 10 s, queue depth 1"
    blocks = [str(secrets.randbelow(max(size // BLOCK, 1))) for _ in range(samples)]
    result = run_tool(host, ["sh", "-c", SAMPLER, "sh", device, *blocks], timeout=600)
    elapsed = int(result.stdout.strip()) / 1e9
    note = f"dd sampler, {samples} reads, includes process start-up: a lower bound"
    return samples / elapsed, note


def _write_speed(host: Host, mounted: MountedGuest, size_mb: int) -> float:
    scratch = f"{mounted.root.rstrip('/')}/.cloudrescue-benchmark-{secrets.token_hex(4)}"
    try:
        argv = ["dd", "if=/dev/zero", f"of={scratch}", "bs=1M", f"count={size_mb}",
                "oflag=direct", "conv=fsync"]  # fmt: skip
        result = run_tool(host, argv, check=False, timeout=600)
        if not result.ok:
            raise DiskError(f"write test failed: {last_line(result)}")
        return _dd_speed(result.stderr)
    finally:
        run_tool(host, ["rm", "-f", "--", scratch], check=False)


def disk_benchmark(
    host: Host,
    device: str,
    *,
    write: bool = False,
    mounted: MountedGuest | None = None,
    size_mb: int = 256,
    samples: int = 200,
) -> BenchmarkReport:
    """Read speeds of ``device`` (read-only); with ``write``, a write test on a scratch file
    of the mounted guest filesystem (``mounted`` required, mounted read-write)."""
    if write and (mounted is None or mounted.read_only):
        raise InvalidInputError("a write test needs the guest filesystem mounted read-write")
    size = _device_size(host, device)
    count = max(min(size_mb, size // (1024 * 1024)), 1)
    argv = ["dd", f"if={device}", "of=/dev/null", "bs=1M", f"count={count}", "iflag=direct"]
    result = run_tool(host, argv, check=False, timeout=600)
    if not result.ok:
        raise DiskError(f"cannot read {device}: {last_line(result)}")
    sequential = _dd_speed(result.stderr)
    iops, method = _random_reads(host, device, size, samples)
    written = _write_speed(host, mounted, size_mb) if write and mounted is not None else None
    return BenchmarkReport(device, sequential, iops, method, written)
