"""The lab network: one bridge per lab, one network namespace (+ veth) per instance.

The host is ``.1`` on the bridge; instances get their address inside their namespace on the
veth end renamed ``eth0``. An nftables table of the lab drops every forwarded packet from or to
the bridge, so nothing leaves the lab.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import signal
from pathlib import Path

from cloudrescue.errors import LabError
from cloudrescue.lab.ledger import Entry, Ledger
from cloudrescue.lab.system import run

LAB_NETWORK = ipaddress.IPv4Network("10.213.0.0/16")
NETNS_DIR = Path("/run/netns")


def bridge_name(lab_id: str) -> str:
    """Bridge of a lab (``crl<lab_id>``)."""
    return f"crl{lab_id}"


def netns_name(lab_id: str, index: int) -> str:
    """Network namespace of instance ``index``."""
    return f"crl{lab_id}-{index}"


def veth_name(lab_id: str, index: int) -> str:
    """Host end of the veth pair of instance ``index`` (at most 15 characters)."""
    return f"crv{lab_id}{index}"


def _table(lab_id: str) -> str:
    return f"crl_{lab_id}"


def used_subnets() -> set[ipaddress.IPv4Network]:
    """/24s of ``10.213.0.0/16`` that an address of this machine already lives in."""
    data = json.loads(run(["ip", "-j", "-4", "addr", "show"]).stdout or "[]")
    used: set[ipaddress.IPv4Network] = set()
    for link in data:
        for info in link.get("addr_info", []):
            address = ipaddress.IPv4Address(info["local"])
            if address in LAB_NETWORK:
                used.add(ipaddress.IPv4Network(f"{address}/24", strict=False))
    return used


def free_subnet() -> ipaddress.IPv4Network:
    """A /24 of ``10.213.0.0/16`` that no other lab (or anything else) of this machine uses."""
    used = used_subnets()
    for subnet in LAB_NETWORK.subnets(new_prefix=24):
        if subnet not in used:
            return subnet
    raise LabError("no free /24 left in 10.213.0.0/16 (too many labs on this machine)")


def _link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


def create_bridge(ledger: Ledger, lab_id: str, gateway: str, prefix: int) -> None:
    """Make the lab's bridge with the host address and the forward-drop table."""
    bridge = bridge_name(lab_id)
    ledger.record("link", bridge)
    run(["ip", "link", "add", "name", bridge, "type", "bridge"])
    run(["ip", "addr", "add", f"{gateway}/{prefix}", "dev", bridge])
    run(["ip", "link", "set", bridge, "up"])
    table = _table(lab_id)
    ledger.record("nftable", table)
    rules = (
        f"table inet {table} {{\n chain forward {{\n  type filter hook forward priority -10;"
        f' policy accept;\n  iifname "{bridge}" drop\n  oifname "{bridge}" drop\n }}\n}}\n'
    )
    run(["nft", "-f", "-"], stdin=rules.encode())


def create_netns(ledger: Ledger, lab_id: str, index: int, mac: str) -> str:
    """Make instance ``index``'s namespace with ``eth0`` (down, no address) on the bridge."""
    name = netns_name(lab_id, index)
    veth = veth_name(lab_id, index)
    ledger.record("netns", name)
    run(["ip", "netns", "add", name])
    ledger.record("link", veth)
    run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", name])
    run(["ip", "link", "set", veth, "master", bridge_name(lab_id), "up"])
    run(["ip", "-n", name, "link", "set", "eth0", "address", mac])
    run(["ip", "-n", name, "link", "set", "lo", "up"])
    # An address a deleted instance had may come back with another MAC: forget what the host
    # cached for the bridge (a real cloud's new port announces itself with a gratuitous ARP).
    run(["ip", "neigh", "flush", "dev", bridge_name(lab_id)], check=False)
    return name


def netns_pids(name: str) -> list[int]:
    """Processes in network namespace ``name``."""
    if not (NETNS_DIR / name).exists():
        return []
    result = run(["ip", "netns", "pids", name], check=False)
    return [int(pid) for pid in result.stdout.split()]


def undo_netns(entry: Entry) -> None:
    """Ledger undo: kill what still runs in the namespace, then delete it."""
    for pid in netns_pids(entry.key):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if (NETNS_DIR / entry.key).exists():
        run(["ip", "netns", "delete", entry.key])


def undo_link(entry: Entry) -> None:
    """Ledger undo: delete a bridge or veth."""
    if _link_exists(entry.key):
        run(["ip", "link", "delete", entry.key])


def undo_nftable(entry: Entry) -> None:
    """Ledger undo: delete the lab's nftables table."""
    if run(["nft", "list", "table", "inet", entry.key], check=False).returncode == 0:
        run(["nft", "delete", "table", "inet", entry.key])
