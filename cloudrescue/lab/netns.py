"""The lab network: one bridge per lab, one network namespace (+ veth) per instance.

The host is ``.1`` on the bridge; instances get their address inside their namespace on the
veth end renamed ``eth0``. An nftables table of the lab drops every forwarded packet from or to
the bridge, so nothing leaves the lab.

On demand the lab also has a *private* network: a bridge inside a namespace of its own
(``crl<lab_id>-private``), so this machine has no interface on it at all and its firewall
never sees that traffic (with ``br_netfilter`` loaded, bridged packets go through the
firewall of the bridge's namespace: here an empty one), an ``unreachable`` route for its /24
(nothing here can reach it, and no other lab picks that /24), and a bastion namespace with a
leg on each network.
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


PRIVATE_BRIDGE = "br-private"  # inside the private network's namespace


def private_netns_name(lab_id: str) -> str:
    """Namespace holding the bridge of a lab's private network."""
    return f"crl{lab_id}-private"


BASTION_SUFFIX = "bastion"


def bastion_netns_name(lab_id: str) -> str:
    """Network namespace of the lab's bastion."""
    return f"crl{lab_id}-{BASTION_SUFFIX}"


def netns_name(lab_id: str, index: int) -> str:
    """Network namespace of instance ``index``."""
    return f"crl{lab_id}-{index}"


def veth_name(lab_id: str, index: int) -> str:
    """Host end of the veth pair of instance ``index`` (at most 15 characters)."""
    return f"crv{lab_id}{index}"


def _table(lab_id: str) -> str:
    return f"crl_{lab_id}"


def used_subnets() -> set[ipaddress.IPv4Network]:
    """/24s of ``10.213.0.0/16`` that an address of this machine already lives in, or that a
    route names (a lab's private network has no address here, only its ``unreachable`` route)."""
    data = json.loads(run(["ip", "-j", "-4", "addr", "show"]).stdout or "[]")
    used: set[ipaddress.IPv4Network] = set()
    for link in data:
        for info in link.get("addr_info", []):
            address = ipaddress.IPv4Address(info["local"])
            if address in LAB_NETWORK:
                used.add(ipaddress.IPv4Network(f"{address}/24", strict=False))
    routes = json.loads(run(["ip", "-j", "-4", "route", "show"], check=False).stdout or "[]")
    for route in routes:
        destination = str(route.get("dst", ""))
        if "/" not in destination:
            continue
        with contextlib.suppress(ValueError):
            network = ipaddress.IPv4Network(destination, strict=False)
            if network.subnet_of(LAB_NETWORK):
                used.add(ipaddress.IPv4Network(f"{network.network_address}/24", strict=False))
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


def _plug(lab_id: str, veth: str, private: bool) -> None:
    """Put the outer end ``veth`` of a pair on the lab's bridge, or on the private network's
    (moved into that namespace first; it goes away with it)."""
    if not private:
        run(["ip", "link", "set", veth, "master", bridge_name(lab_id), "up"])
        return
    network = private_netns_name(lab_id)
    run(["ip", "link", "set", veth, "netns", network])
    run(["ip", "-n", network, "link", "set", veth, "master", PRIVATE_BRIDGE, "up"])


def create_netns(
    ledger: Ledger, lab_id: str, index: int, mac: str, *, private: bool = False
) -> str:
    """Make instance ``index``'s namespace with ``eth0`` (down, no address) on the lab's
    bridge, or on the private network (``create_private_network`` made it)."""
    name = netns_name(lab_id, index)
    veth = veth_name(lab_id, index)
    ledger.record("netns", name)
    run(["ip", "netns", "add", name])
    ledger.record("link", veth)
    run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", name])
    _plug(lab_id, veth, private)
    run(["ip", "-n", name, "link", "set", "eth0", "address", mac])
    run(["ip", "-n", name, "link", "set", "lo", "up"])
    # An address a deleted instance had may come back with another MAC: forget what the host
    # cached for the bridge (a real cloud's new port announces itself with a gratuitous ARP).
    if not private:
        run(["ip", "neigh", "flush", "dev", bridge_name(lab_id)], check=False)
    return name


def create_private_network(ledger: Ledger, lab_id: str, subnet: ipaddress.IPv4Network) -> str:
    """Make the lab's private network: its namespace with a bridge, and the ``unreachable``
    route that keeps this machine's packets for ``subnet`` off every link."""
    ledger.record("route", str(subnet))
    run(["ip", "route", "add", "unreachable", str(subnet)])
    name = private_netns_name(lab_id)
    ledger.record("netns", name)
    run(["ip", "netns", "add", name])
    run(["ip", "-n", name, "link", "add", "name", PRIVATE_BRIDGE, "type", "bridge"])
    run(["ip", "-n", name, "link", "set", PRIVATE_BRIDGE, "up"])
    return name


def create_bastion_netns(ledger: Ledger, lab_id: str, macs: tuple[str, str]) -> str:
    """Make the bastion's namespace: ``eth0`` on the lab's bridge, ``eth1`` on the private
    network (both down, no address)."""
    name = bastion_netns_name(lab_id)
    ledger.record("netns", name)
    run(["ip", "netns", "add", name])
    for number, (inside, mac) in enumerate(zip(("eth0", "eth1"), macs, strict=True)):
        veth = f"crv{lab_id}b{number}"
        ledger.record("link", veth)
        run(["ip", "link", "add", veth, "type", "veth", "peer", "name", inside, "netns", name])
        _plug(lab_id, veth, private=number == 1)
        run(["ip", "-n", name, "link", "set", inside, "address", mac])
    run(["ip", "-n", name, "link", "set", "lo", "up"])
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


def undo_route(entry: Entry) -> None:
    """Ledger undo: delete a private network's ``unreachable`` route."""
    shown = run(["ip", "-4", "route", "show", "type", "unreachable", entry.key], check=False)
    if shown.stdout.strip():
        run(["ip", "route", "del", "unreachable", entry.key])


def undo_nftable(entry: Entry) -> None:
    """Ledger undo: delete the lab's nftables table."""
    if run(["nft", "list", "table", "inet", entry.key], check=False).returncode == 0:
        run(["nft", "delete", "table", "inet", entry.key])
