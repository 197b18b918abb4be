"""Put the guest's primary NIC back on DHCP, so it takes the address the cloud gives it.

Edits whichever configurations the guest has: netplan (``/etc/netplan/*.yaml``), ifupdown
(``/etc/network/interfaces`` and ``interfaces.d``), NetworkManager keyfiles and sysconfig
``ifcfg-*`` files. Also moves aside stale udev persistent-net rules (they rename NICs by MAC
address, which changes with a new port) and cloud-init files that disable its network config.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import yaml

from cloudrescue.fixes.common import commented, load_guest_yaml
from cloudrescue.guest import Guest
from cloudrescue.guestfs import Change, GuestFS

PREFERRED_NICS = ("eth0", "ens3", "ens4", "enp1s0", "enp0s3", "ens5", "eth1")
UDEV_PERSISTENT_NET = "/etc/udev/rules.d/70-persistent-net.rules"
CLOUD_CFG_D = "/etc/cloud/cloud.cfg.d"
IFUPDOWN_MAIN = "/etc/network/interfaces"
IFUPDOWN_STATIC = ("address", "netmask", "gateway", "broadcast", "network", "pointopoint")
IFUPDOWN_STANZAS = ("iface", "auto", "allow-", "source", "mapping", "rename", "no-")
NM_DIR = "/etc/NetworkManager/system-connections"
IFCFG_DIR = "/etc/sysconfig/network-scripts"
IFCFG_STATIC = re.compile(r"^(IPADDR|PREFIX|NETMASK|GATEWAY)\d*=")


def primary_nic(names: Iterable[str]) -> str | None:
    """The NIC to treat as primary among configured names (``lo`` and virtual ones skipped)."""
    candidates = [
        name for name in dict.fromkeys(names) if name != "lo" and not name.startswith(("br", "vir"))
    ]
    for preferred in PREFERRED_NICS:
        if preferred in candidates:
            return preferred
    return candidates[0] if candidates else None


# -- netplan -----------------------------------------------------------------------------------


def _netplan_dhcp(conf: dict[str, Any]) -> bool:
    """Switch one netplan ethernet to DHCPv4; whether anything changed."""
    before = repr(conf)
    conf["dhcp4"] = True
    addresses = [a for a in conf.get("addresses") or [] if ":" in str(a)]
    if addresses:
        conf["addresses"] = addresses
    else:
        conf.pop("addresses", None)
    conf.pop("gateway4", None)
    routes = [r for r in conf.get("routes") or [] if ":" in str(r.get("via", ""))]
    if routes:
        conf["routes"] = routes
    else:
        conf.pop("routes", None)
    return repr(conf) != before


def _netplan(files: GuestFS, nic: str | None) -> list[Change]:
    paths = [f"/etc/netplan/{n}" for n in files.listdir("/etc/netplan") if n.endswith(".yaml")]
    parsed: dict[str, dict[str, Any]] = {}
    for path in paths:
        try:
            data = load_guest_yaml(files.read_text(path) or "")
        except yaml.YAMLError:
            continue
        if isinstance(data, dict) and isinstance(data.get("network"), dict):
            parsed[path] = data
    names = [name for data in parsed.values() for name in (data["network"].get("ethernets") or {})]
    target = nic or primary_nic(names)
    changes: list[Change] = []
    for path, data in parsed.items():
        ethernets = data["network"].get("ethernets") or {}
        conf = ethernets.get(target)
        if isinstance(conf, dict) and _netplan_dhcp(conf):
            text = yaml.safe_dump(data, default_flow_style=False, sort_keys=False)
            changes += files.write_file(path, text.encode())
    return changes


# -- ifupdown ----------------------------------------------------------------------------------


def _ifupdown_files(files: GuestFS) -> list[str]:
    paths = [IFUPDOWN_MAIN] if files.exists(IFUPDOWN_MAIN) else []
    paths += [
        f"/etc/network/interfaces.d/{name}"
        for name in files.listdir("/etc/network/interfaces.d")
        if re.fullmatch(r"[\w.-]+", name) and not name.startswith(".")
    ]
    return paths


def ifupdown_dhcp(text: str, nic: str) -> str:
    """ifupdown text where ``iface <nic> inet`` is ``dhcp`` and its static lines commented."""
    lines = text.splitlines(keepends=True)
    inside = False
    for index, line in enumerate(lines):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if words[0].startswith(IFUPDOWN_STANZAS):
            inside = words[:3] == ["iface", nic, "inet"] and len(words) >= 4
            if inside and words[3] not in ("dhcp", "loopback"):
                lines[index] = re.sub(r"(\binet\s+)\S+", r"\1dhcp", line, count=1)
        elif inside and words[0] in IFUPDOWN_STATIC:
            lines[index] = commented(line, "static address replaced by DHCP")
    return "".join(lines)


def _ifupdown(files: GuestFS, nic: str | None) -> list[Change]:
    paths = _ifupdown_files(files)
    texts = {path: files.read_text(path) or "" for path in paths}
    names = [
        m.group(1)
        for text in texts.values()
        for m in re.finditer(r"(?m)^\s*iface\s+(\S+)\s+inet\s", text)
    ]
    target = nic or primary_nic(names)
    if target is None:
        return []
    changes: list[Change] = []
    for path, text in texts.items():
        changes += files.write_file(path, ifupdown_dhcp(text, target).encode())
    everything = "".join(texts.values())
    starts = re.search(
        rf"(?m)^\s*(auto|allow-hotplug)\s+([^#\n]*\s)?{re.escape(target)}(\s|$)", everything
    )
    if target in names and starts is None and IFUPDOWN_MAIN in texts:
        current = files.read_text(IFUPDOWN_MAIN) or ""
        text = current + ("" if current.endswith("\n") or not current else "\n")
        changes += files.write_file(IFUPDOWN_MAIN, f"{text}auto {target}\n".encode())
    return changes


# -- NetworkManager keyfiles -------------------------------------------------------------------


def keyfile_dhcp(text: str) -> str:
    """A keyfile whose ``[ipv4]`` section is ``method=auto`` without static addresses."""
    out: list[str] = []
    section, saw_method = "", False
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            if section == "ipv4" and not saw_method:
                out.append("method=auto\n")
            section, saw_method = stripped[1:-1], False
            out.append(line)
            continue
        key = stripped.split("=", 1)[0].strip()
        if section == "ipv4" and key == "method":
            saw_method = True
            out.append("method=auto\n")
        elif section != "ipv4" or not re.fullmatch(r"(address|addresses|gateway|routes?)\d*", key):
            out.append(line)
    if section == "ipv4" and not saw_method:
        out.append("method=auto\n")
    return "".join(out)


def _keyfile_nic(text: str) -> str | None:
    match = re.search(r"(?m)^\s*interface-name\s*=\s*(\S+)", text)
    return match.group(1) if match else None


def _keyfiles(files: GuestFS, nic: str | None) -> list[Change]:
    paths = [f"{NM_DIR}/{n}" for n in files.listdir(NM_DIR) if n.endswith(".nmconnection")]
    texts = {path: files.read_text(path) or "" for path in paths}
    target = nic or primary_nic(n for t in texts.values() if (n := _keyfile_nic(t)))
    changes: list[Change] = []
    for path, text in texts.items():
        own = _keyfile_nic(text)
        ethernet = re.search(r"(?m)^\s*type\s*=\s*(ethernet|802-3-ethernet)\s*$", text)
        if (own == target or (own is None and ethernet)) and "[ipv4]" in text:
            changes += files.write_file(path, keyfile_dhcp(text).encode())
    return changes


# -- sysconfig ---------------------------------------------------------------------------------


def ifcfg_dhcp(text: str) -> str:
    """An ifcfg file with ``BOOTPROTO=dhcp``, ``ONBOOT=yes`` and no static IPv4 settings."""
    out: list[str] = []
    seen: set[str] = set()
    for line in text.splitlines(keepends=True):
        key = line.split("=", 1)[0].strip()
        if IFCFG_STATIC.match(line.strip()):
            continue
        if key in ("BOOTPROTO", "ONBOOT"):
            seen.add(key)
            line = f"{key}={'dhcp' if key == 'BOOTPROTO' else 'yes'}\n"
        out.append(line)
    if out and not out[-1].endswith("\n"):
        out[-1] += "\n"
    out += [f"{key}={value}\n" for key, value in (("BOOTPROTO", "dhcp"), ("ONBOOT", "yes"))
            if key not in seen]  # fmt: skip
    return "".join(out)


def _ifcfg(files: GuestFS, nic: str | None) -> list[Change]:
    names = [n[len("ifcfg-") :] for n in files.listdir(IFCFG_DIR) if n.startswith("ifcfg-")]
    target = nic or primary_nic(n for n in names if "." not in n)
    if target is None:
        return []
    path = f"{IFCFG_DIR}/ifcfg-{target}"
    text = files.read_text(path)
    return [] if text is None else files.write_file(path, ifcfg_dhcp(text).encode())


# -- udev and cloud-init -----------------------------------------------------------------------


def _disables_network(data: dict[str, Any]) -> bool:
    network = data.get("network")
    return isinstance(network, dict) and str(network.get("config")).lower() == "disabled"


def _cloud_init_network(files: GuestFS) -> list[Change]:
    changes: list[Change] = []
    for name in files.listdir(CLOUD_CFG_D):
        path = f"{CLOUD_CFG_D}/{name}"
        if not name.endswith(".cfg"):
            continue
        try:
            data = load_guest_yaml(files.read_text(path) or "")
        except yaml.YAMLError:
            continue
        if not isinstance(data, dict) or not _disables_network(data):
            continue
        if set(data) == {"network"}:
            changes += files.remove(path)
        else:
            rest = {key: value for key, value in data.items() if key != "network"}
            text = yaml.safe_dump(rest, default_flow_style=False, sort_keys=False)
            changes += files.write_file(path, text.encode())
    return changes


def switch_to_dhcp(guest: Guest, *, interface: str | None = None) -> list[Change]:
    """Make the primary NIC (or ``interface``) use DHCP in every network configuration the
    guest has; drop stale udev NIC naming and cloud-init's "network disabled". Idempotent."""
    files = guest.files
    changes: list[Change] = []
    changes += _netplan(files, interface)
    changes += _ifupdown(files, interface)
    changes += _keyfiles(files, interface)
    changes += _ifcfg(files, interface)
    changes += files.remove(UDEV_PERSISTENT_NET)
    changes += _cloud_init_network(files)
    if changes:
        changes += files.request_selinux_relabel()
    return changes
