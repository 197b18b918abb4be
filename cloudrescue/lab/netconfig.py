"""What address ``eth0`` gets at boot, read from the disk's own network configuration.

Debian-like disks: netplan (``/etc/netplan/*.yaml``) when present, else ifupdown
(``/etc/network/interfaces`` and what it sources; only ``auto``/``allow-hotplug`` interfaces
come up). RHEL-like disks (``ID_LIKE`` names rhel/fedora): a NetworkManager keyfile for eth0,
else ``/etc/sysconfig/network-scripts/ifcfg-eth0``. ``dhcp`` means the cloud's address.
"""

from __future__ import annotations

import configparser
import glob
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

IFACE = "eth0"


@dataclass(frozen=True)
class NetResult:
    """Addresses (with prefix) eth0 ends up with and where that came from."""

    source: str
    addresses: list[str] = field(default_factory=list)
    dhcp: bool = False


def _prefixed(address: str, netmask: str | None = None, prefix: str | None = None) -> str:
    if "/" in address:
        return str(ipaddress.IPv4Interface(address))
    if prefix:
        return str(ipaddress.IPv4Interface(f"{address}/{prefix}"))
    return str(ipaddress.IPv4Interface(f"{address}/{netmask or '255.255.255.0'}"))


def is_rhel_like(root: Path) -> bool:
    """Whether the disk's os-release names a RHEL-like distribution."""
    try:
        text = (root / "etc/os-release").read_text()
    except (FileNotFoundError, NotADirectoryError):
        return False
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key in ("ID", "ID_LIKE") and any(
            name in value for name in ("rhel", "fedora", "centos", "rocky")
        ):
            return True
    return False


def _ifupdown_lines(root: Path, path: Path, depth: int = 0) -> list[str]:
    try:
        lines = path.read_text().splitlines()
    except (FileNotFoundError, IsADirectoryError, UnicodeDecodeError):
        return []
    found: list[str] = []
    for raw in lines:
        line = raw.split("#", 1)[0].strip()
        words = line.split()
        if depth < 4 and words[:1] in (["source"], ["source-directory"]) and len(words) > 1:
            pattern = str(root / words[1].lstrip("/"))
            if words[0] == "source-directory":
                pattern += "/*"
            for included in sorted(glob.glob(pattern)):
                found += _ifupdown_lines(root, Path(included), depth + 1)
        elif line:
            found.append(line)
    return found


def ifupdown(root: Path, cloud_address: str) -> NetResult:
    """Interpret ifupdown's configuration for eth0."""
    lines = _ifupdown_lines(root, root / "etc/network/interfaces")
    source = "ifupdown"
    starts = {
        w
        for line in lines
        if line.split()[0] in ("auto", "allow-hotplug")
        for w in line.split()[1:]
    }
    method: str | None = None
    options: dict[str, str] = {}
    current = False
    for line in lines:
        words = line.split()
        if words[0] == "iface":
            current = len(words) >= 4 and words[1] == IFACE and words[2] == "inet"
            if current:
                method = words[3]
        elif current and len(words) >= 2:
            options[words[0]] = words[1]
    if IFACE not in starts or method is None:
        return NetResult(source)
    if method == "dhcp":
        return NetResult(source, [cloud_address], dhcp=True)
    if method == "static" and "address" in options:
        return NetResult(source, [_prefixed(options["address"], options.get("netmask"))])
    return NetResult(source)


def netplan(root: Path, cloud_address: str) -> NetResult | None:
    """Interpret netplan's configuration for eth0 (None when there is none)."""
    files = sorted((root / "etc/netplan").glob("*.yaml"))
    if not files:
        return None
    merged: dict[str, Any] = {}
    for path in files:
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError:
            continue
        for name, conf in (data.get("network", {}).get("ethernets") or {}).items():
            merged.setdefault(name, {}).update(conf or {})
    for name, conf in merged.items():
        match = conf.get("match", {}) or {}
        if name == IFACE or match.get("name") in (IFACE, "e*", "eth*") or "macaddress" in match:
            if conf.get("dhcp4"):
                return NetResult("netplan", [cloud_address], dhcp=True)
            addresses = [_prefixed(str(a)) for a in conf.get("addresses", []) if ":" not in str(a)]
            return NetResult("netplan", addresses)
    return NetResult("netplan")


def keyfile(root: Path, cloud_address: str) -> NetResult | None:
    """Interpret a NetworkManager keyfile for eth0 (None when there is none)."""
    for path in sorted((root / "etc/NetworkManager/system-connections").glob("*.nmconnection")):
        parser = configparser.ConfigParser(interpolation=None, strict=False)
        try:
            parser.read_string(path.read_text())
        except (configparser.Error, UnicodeDecodeError):
            continue
        if parser.get("connection", "interface-name", fallback=IFACE) != IFACE:
            continue
        method = parser.get("ipv4", "method", fallback="auto")
        if method == "auto":
            return NetResult("NetworkManager", [cloud_address], dhcp=True)
        if method == "manual":
            addresses = [
                parser.get("ipv4", key).split(",")[0]
                for key in parser["ipv4"]
                if key.startswith("address")
            ]
            return NetResult("NetworkManager", [_prefixed(a) for a in addresses])
        return NetResult("NetworkManager")
    return None


def ifcfg(root: Path, cloud_address: str) -> NetResult:
    """Interpret ``/etc/sysconfig/network-scripts/ifcfg-eth0``."""
    path = root / "etc/sysconfig/network-scripts" / f"ifcfg-{IFACE}"
    values: dict[str, str] = {}
    try:
        for line in path.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and not key.lstrip().startswith("#"):
                values[key.strip()] = value.strip().strip("\"'")
    except FileNotFoundError:
        return NetResult("ifcfg")
    if values.get("ONBOOT", "yes").lower() not in ("yes", "true"):
        return NetResult("ifcfg")
    if values.get("BOOTPROTO", "none").lower() == "dhcp":
        return NetResult("ifcfg", [cloud_address], dhcp=True)
    if "IPADDR" in values:
        address = _prefixed(values["IPADDR"], values.get("NETMASK"), values.get("PREFIX"))
        return NetResult("ifcfg", [address])
    return NetResult("ifcfg")


def interpret(root: Path, cloud_address: str) -> NetResult:
    """What eth0 gets on this disk (``cloud_address`` when it asks for DHCP)."""
    if is_rhel_like(root):
        return keyfile(root, cloud_address) or ifcfg(root, cloud_address)
    return netplan(root, cloud_address) or ifupdown(root, cloud_address)
