"""Loading the firewall a disk persisted, the way its boot services would.

Runs inside the instance's network namespace, with the disk's root prepared for ``chroot``:
netfilter-persistent (``/etc/iptables/rules.v4|v6``, the disk's own ``iptables-restore``),
nftables (``/etc/nftables.conf`` when ``nftables.service`` is enabled), ufw
(``ENABLED=yes``: the disk's own ``ufw-init``) and firewalld (enabled: its default zone becomes
an nftables input chain that accepts only the zone's services and ports).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cloudrescue.errors import LabError
from cloudrescue.lab.system import run

SERVICE_PORTS = {
    "ssh": ("tcp", 22),
    "http": ("tcp", 80),
    "https": ("tcp", 443),
    "cockpit": ("tcp", 9090),
    "dhcpv6-client": ("udp", 546),
}
DEFAULT_ZONE_SERVICES = {"public": ["ssh", "dhcpv6-client", "cockpit"], "drop": [], "block": []}


@dataclass(frozen=True)
class Loaded:
    """One firewall unit that ran: its name and whether it succeeded."""

    unit: str
    ok: bool
    detail: str = ""


def _chroot(root: Path, *argv: str) -> None:
    run(["chroot", str(root), *argv])


def netfilter_persistent(root: Path) -> list[Loaded]:
    """Restore ``/etc/iptables/rules.v4`` and ``rules.v6`` when present."""
    done: list[Loaded] = []
    for name, tool in (("rules.v4", "iptables-restore"), ("rules.v6", "ip6tables-restore")):
        if (root / "etc/iptables" / name).is_file():
            done.append(_restore(root, tool, f"/etc/iptables/{name}"))
    return done


def _restore(root: Path, tool: str, rules: str) -> Loaded:
    return _attempt("netfilter-persistent.service", lambda: _chroot(root, tool, rules))


def nftables(root: Path) -> list[Loaded]:
    """Load ``/etc/nftables.conf`` when ``nftables.service`` is enabled."""
    wants = root / "etc/systemd/system/sysinit.target.wants/nftables.service"
    if not wants.is_symlink() or not (root / "etc/nftables.conf").is_file():
        return []
    return [_attempt("nftables.service", lambda: _chroot(root, "nft", "-f", "/etc/nftables.conf"))]


def ufw(root: Path) -> list[Loaded]:
    """Start ufw with the disk's own ``ufw-init`` when ``ENABLED=yes``."""
    try:
        conf = (root / "etc/ufw/ufw.conf").read_text()
    except FileNotFoundError:
        return []
    enabled = any(line.strip().replace('"', "") == "ENABLED=yes" for line in conf.splitlines())
    if not enabled:
        return []
    return [_attempt("ufw.service", lambda: _chroot(root, "/lib/ufw/ufw-init", "start"))]


def _zone_rules(root: Path) -> str | None:
    wants = root / "etc/systemd/system/multi-user.target.wants/firewalld.service"
    if not wants.is_symlink():
        return None
    zone = "public"
    conf = root / "etc/firewalld/firewalld.conf"
    if conf.is_file():
        for line in conf.read_text().splitlines():
            if line.strip().startswith("DefaultZone="):
                zone = line.split("=", 1)[1].strip()
    services = list(DEFAULT_ZONE_SERVICES.get(zone, []))
    ports: list[tuple[str, int]] = []
    target = "default"
    zone_file = root / "etc/firewalld/zones" / f"{zone}.xml"
    if zone_file.is_file():
        tree = ET.parse(zone_file)  # noqa: S314 - the lab's own guest file
        target = tree.getroot().get("target", "default")
        services = [e.get("name", "") for e in tree.getroot().iter("service")]
        ports = [
            (e.get("protocol", "tcp"), int(e.get("port", "0").split("-")[0]))
            for e in tree.getroot().iter("port")
        ]
    ports += [SERVICE_PORTS[s] for s in services if s in SERVICE_PORTS]
    accepts = "".join(f"  {proto} dport {port} accept\n" for proto, port in ports)
    final = (
        "accept"
        if target == "ACCEPT"
        else "drop"
        if target == "DROP"
        else "reject with icmpx admin-prohibited"
    )
    return (
        "table inet firewalld {\n chain filter_INPUT {\n  type filter hook input priority 10;"
        ' policy accept;\n  ct state established,related accept\n  iifname "lo" accept\n'
        f"  meta l4proto {{ icmp, ipv6-icmp }} accept\n{accepts}  {final}\n }}\n}}\n"
    )


def firewalld(root: Path) -> list[Loaded]:
    """Apply firewalld's default zone when firewalld is enabled."""
    try:
        rules = _zone_rules(root)
    except (ET.ParseError, ValueError) as error:
        return [Loaded("firewalld.service", False, f"bad zone file: {error}")]
    if rules is None:
        return []
    return [_attempt("firewalld.service", lambda: run(["nft", "-f", "-"], stdin=rules.encode()))]


def _attempt(unit: str, action: Callable[[], object]) -> Loaded:
    try:
        action()
    except LabError as error:
        return Loaded(unit, False, error.message)
    return Loaded(unit, True)


def load_all(root: Path) -> list[Loaded]:
    """Every persisted firewall of the disk, in boot order."""
    return [*netfilter_persistent(root), *nftables(root), *ufw(root), *firewalld(root)]


def flush() -> None:
    """Remove every rule of the current network namespace (iptables-nft rules included)."""
    run(["nft", "flush", "ruleset"])


SSH_CUT_TABLE = "lab_ssh_cut"


def cut_ssh(port: int = 22) -> None:
    """Answer every TCP packet to ``port`` of the current network namespace with a reset (the
    lab's ``ssh_cut`` fault, for a rescue system): a connection is refused at once, one
    already open is reset. Gone with the next ``flush`` (the guest's boot)."""
    rules = (
        f"table inet {SSH_CUT_TABLE} {{\n"
        "  chain input {\n"
        "    type filter hook input priority -10; policy accept;\n"
        f"    tcp dport {port} reject with tcp reset\n"
        "  }\n"
        "}\n"
    )
    run(["nft", "-f", "-"], stdin=rules.encode())
