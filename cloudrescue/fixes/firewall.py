"""Let SSH through the firewall the guest loads at boot, or stop that firewall from loading.

Handled: ufw (``user.rules``/``user6.rules``, when ``ufw.conf`` says ``ENABLED=yes``),
firewalld (the default zone's XML, ``/etc`` overriding ``/usr/lib``), iptables-persistent /
iptables-services
(``/etc/iptables/rules.v4|v6``, ``/etc/sysconfig/iptables|ip6tables``) and nftables
(``/etc/nftables.conf``, ``/etc/sysconfig/nftables.conf`` and what they include). Rules are
edited in place, everything else kept; the previous files are backed up by ``GuestFS``.
``mode="disable"`` turns the firewall off at boot instead (ENABLED=no, units masked, iptables
rule files moved aside).
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
import shlex
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from cloudrescue.errors import FixFailedError, InvalidInputError
from cloudrescue.fixes.common import commented, disable_unit, guest_program, unit_enabled
from cloudrescue.fixes.sandbox import cannot_run, run_in_guest
from cloudrescue.fixes.sshd_config import ssh_ports
from cloudrescue.guest import Guest
from cloudrescue.guestfs import MAX_READ, Change, GuestFS
from cloudrescue.remote.base import Host

FirewallMode = Literal["allow", "disable"]
UFW_CONF = "/etc/ufw/ufw.conf"
UFW_RULES = {4: "/etc/ufw/user.rules", 6: "/etc/ufw/user6.rules"}
FIREWALLD_CONF = "/etc/firewalld/firewalld.conf"
FIREWALLD_ZONE_DIRS = ("/usr/lib/firewalld/zones", "/lib/firewalld/zones")
BUILTIN_ZONES = {
    "public": '  <service name="ssh"/>\n  <service name="dhcpv6-client"/>\n',
    "drop": "",
    "block": "",
}
BUILTIN_TARGETS = {"drop": "DROP", "block": "%%REJECT%%"}
IPTABLES_FILES = {
    "/etc/iptables/rules.v4": 4,
    "/etc/iptables/rules.v6": 6,
    "/etc/sysconfig/iptables": 4,
    "/etc/sysconfig/ip6tables": 6,
}
IPTABLES_UNITS = ("netfilter-persistent.service", "iptables.service", "ip6tables.service")
NFT_FILES = ("/etc/nftables.conf", "/etc/sysconfig/nftables.conf")
MAX_INCLUDE_DEPTH = 8
DROPS = ("DROP", "REJECT")
SSH_SERVICE_PORT = 22


@dataclass(frozen=True)
class FirewallState:
    """One firewall found in the guest and whether it is loaded at boot."""

    name: str
    enabled: bool
    files: tuple[str, ...]


def _conf_value(text: str, key: str) -> str | None:
    for line in text.splitlines():
        name, sep, value = line.strip().partition("=")
        if sep and name.strip() == key:
            return value.strip().strip("\"'")
    return None


def detect_firewalls(files: GuestFS) -> list[FirewallState]:
    """Every firewall configuration the guest has, and whether its boot loads it."""
    found: list[FirewallState] = []
    conf = files.read_text(UFW_CONF)
    if conf is not None:
        enabled = (_conf_value(conf, "ENABLED") or "no").lower() == "yes"
        rule_files = tuple(p for p in UFW_RULES.values() if files.exists(p))
        found.append(FirewallState("ufw", enabled, (UFW_CONF, *rule_files)))
    if files.exists(FIREWALLD_CONF) or unit_enabled(files, "firewalld.service"):
        found.append(
            FirewallState(
                "firewalld", unit_enabled(files, "firewalld.service"), (_zone_path(files),)
            )
        )
    rules = tuple(path for path in IPTABLES_FILES if files.exists(path))
    if rules:
        # Debian's netfilter-persistent loads /etc/iptables/rules.v* whenever they exist.
        loaded = any(unit_enabled(files, unit) for unit in IPTABLES_UNITS) or any(
            path.startswith("/etc/iptables/") for path in rules
        )
        found.append(FirewallState("iptables", loaded, rules))
    nft = tuple(path for path in NFT_FILES if files.exists(path))
    if nft:
        found.append(FirewallState("nftables", unit_enabled(files, "nftables.service"), nft))
    return found


# -- iptables-restore format (netfilter-persistent, iptables-services, ufw) -------------------


def _tokens(line: str) -> list[str]:
    try:
        return shlex.split(line)
    except ValueError:
        return line.split()


def _option(tokens: list[str], *names: str) -> str | None:
    for index, token in enumerate(tokens[:-1]):
        if token in names:
            return tokens[index + 1]
    return None


def _port_in(spec: str, port: int) -> bool:
    for part in spec.split(","):
        low, _, high = part.partition(":")
        try:
            if int(low or 0) <= port <= int(high or low or 65535):
                return True
        except ValueError:
            continue
    return False


RuleVerdict = Literal["accept", "drop", "other"]


def iptables_verdict(line: str, chain: str, port: int) -> RuleVerdict:
    """What an ``-A <chain>`` rule does to a new TCP connection to ``port`` from anywhere.

    ``drop`` also stands for "may drop it" (jumps to other chains, unknown targets);
    rules limited to a source, an interface or to states other than NEW are ``other``.
    """
    tokens = _tokens(line)
    if tokens[:2] != ["-A", chain]:
        return "other"
    if _option(tokens, "-s", "--source", "-i", "--in-interface"):
        return "other"
    state = _option(tokens, "--state", "--ctstate")
    if state is not None and "NEW" not in state.split(","):
        return "other"
    protocol = _option(tokens, "-p", "--protocol")
    if protocol not in (None, "tcp", "6", "all"):
        return "other"
    ports = _option(tokens, "--dport", "--destination-port", "--dports", "--destination-ports")
    negated = "!" in tokens
    matches = negated or ports is None or _port_in(ports, port)
    target = _option(tokens, "-j", "--jump")
    if not matches or target is None:
        return "other"
    if target == "ACCEPT" and ports is not None and not negated:
        return "accept"
    if target in ("ACCEPT", "RETURN", "LOG"):
        return "other"
    return "drop"


def _explicit_drop(line: str, chain: str, port: int) -> bool:
    """A rule that drops exactly the SSH port for everyone (what a mistake looks like)."""
    tokens = _tokens(line)
    ports = _option(tokens, "--dport", "--destination-port", "--dports", "--destination-ports")
    return (
        iptables_verdict(line, chain, port) == "drop"
        and ports is not None
        and "!" not in tokens
        and _port_in(ports, port)
        and _option(tokens, "-j", "--jump") in DROPS
    )


def _filter_table(lines: list[str]) -> tuple[int, int] | None:
    start = next((i for i, line in enumerate(lines) if line.strip() == "*filter"), None)
    if start is None:
        return None
    end = next((i for i in range(start + 1, len(lines)) if lines[i].strip() == "COMMIT"), None)
    return None if end is None else (start, end)


def allow_in_iptables(text: str, ports: Sequence[int], chain: str = "INPUT") -> str:
    """``iptables-save`` text where new TCP connections to ``ports`` get through ``chain``.

    Rules dropping exactly those ports are commented out; an ACCEPT goes at the top of the
    chain when anything (a drop rule, a jump, a DROP policy) could still stop them.
    """
    lines = text.splitlines(keepends=True)
    table = _filter_table(lines)
    if table is None:
        return text
    start, end = table
    for index in range(start + 1, end):
        if any(_explicit_drop(lines[index], chain, port) for port in ports):
            lines[index] = commented(lines[index], "dropped SSH")
    body = lines[start + 1 : end]
    policy = next(
        (
            line.split()[1]
            for line in body
            if line.startswith(f":{chain} ") and len(line.split()) > 1
        ),
        "ACCEPT",
    )
    missing = []
    for port in ports:
        verdicts = [iptables_verdict(line, chain, port) for line in body]
        decisive = next((v for v in verdicts if v != "other"), None)
        if decisive == "drop" or (decisive is None and policy in DROPS):
            missing.append(port)
    if not missing:
        return "".join(lines)
    first_rule = next(
        (i for i in range(start + 1, end) if _tokens(lines[i])[:2] == ["-A", chain]), end
    )
    accepts = [f"-A {chain} -p tcp -m tcp --dport {port} -j ACCEPT\n" for port in missing]
    lines[first_rule:first_rule] = accepts
    return "".join(lines)


def _iptables_valid(host: Host, text: str, family: int) -> bool | None:
    """``iptables-restore --test`` on the rescue (``None`` when it cannot tell)."""
    tool = "iptables-restore" if family == 4 else "ip6tables-restore"
    try:
        result = host.run([tool, "--test"], stdin=text.encode(), check=False, timeout=60)
    except FileNotFoundError:
        return None
    return None if result.exit_code == 127 else result.ok


def _checked_iptables(host: Host, path: str, old: str, new: str, family: int) -> str:
    if new == old or _iptables_valid(host, new, family) is not False:
        return new
    if _iptables_valid(host, old, family) is False:
        return new  # this rescue cannot load even the guest's own rules: no verdict
    raise FixFailedError(f"the edited {path} does not pass iptables-restore --test")


def _iptables(files: GuestFS, mode: FirewallMode, ports: Sequence[int]) -> list[Change]:
    changes: list[Change] = []
    for path, family in IPTABLES_FILES.items():
        old = files.read_text(path)
        if old is None:
            continue
        if mode == "disable":
            changes += files.remove(path)
            continue
        new = _checked_iptables(files.host, path, old, allow_in_iptables(old, ports), family)
        changes += files.write_file(path, new.encode())
    if mode == "disable":
        for unit in IPTABLES_UNITS:
            if unit_enabled(files, unit):
                changes += disable_unit(files, unit)
    return changes


# -- ufw ---------------------------------------------------------------------------------------


def allow_in_ufw(text: str, ports: Sequence[int], family: int) -> str:
    """ufw ``user.rules``/``user6.rules`` text with an ``allow <port>/tcp`` rule first."""
    chain = "ufw-user-input" if family == 4 else "ufw6-user-input"
    anywhere = "0.0.0.0/0" if family == 4 else "::/0"
    lines = text.splitlines(keepends=True)
    marker = next((i for i, line in enumerate(lines) if line.strip() == "### RULES ###"), None)
    if marker is None:
        return allow_in_iptables(text, ports, chain)
    added: list[str] = []
    for port in ports:
        verdicts = [iptables_verdict(line, chain, port) for line in lines]
        if next((v for v in verdicts if v != "other"), None) == "accept":
            continue
        added += [
            "\n",
            f"### tuple ### allow tcp {port} {anywhere} any {anywhere} in\n",
            f"-A {chain} -p tcp --dport {port} -j ACCEPT\n",
        ]
    lines[marker + 1 : marker + 1] = added
    return "".join(lines)


def _ufw(files: GuestFS, mode: FirewallMode, ports: Sequence[int]) -> list[Change]:
    conf = files.read_text(UFW_CONF)
    if conf is None:
        return []
    if mode == "disable":
        new = re.sub(r"(?m)^(\s*ENABLED\s*=\s*)\S*", r"\1no", conf)
        return files.write_file(UFW_CONF, new.encode())
    if (_conf_value(conf, "ENABLED") or "no").lower() != "yes":
        return []  # installed but not started at boot (Ubuntu's default): nothing to let through
    changes: list[Change] = []
    for family, path in UFW_RULES.items():
        old = files.read_text(path)
        if old is not None:
            new = _checked_iptables(files.host, path, old, allow_in_ufw(old, ports, family), family)
            changes += files.write_file(path, new.encode())
    return changes


# -- firewalld ---------------------------------------------------------------------------------


def _default_zone(files: GuestFS) -> str:
    zone = _conf_value(files.read_text(FIREWALLD_CONF) or "", "DefaultZone")
    return zone if zone and re.fullmatch(r"[\w.-]+", zone) else "public"


def _zone_path(files: GuestFS) -> str:
    return f"/etc/firewalld/zones/{_default_zone(files)}.xml"


def _zone_text(files: GuestFS, zone: str) -> str:
    own = files.read_text(f"/etc/firewalld/zones/{zone}.xml")
    if own is not None:
        return own
    for directory in FIREWALLD_ZONE_DIRS:
        shipped = files.read_text(f"{directory}/{zone}.xml")
        if shipped is not None:
            return shipped
    target = f' target="{BUILTIN_TARGETS[zone]}"' if zone in BUILTIN_TARGETS else ""
    return (
        f'<?xml version="1.0" encoding="utf-8"?>\n<zone{target}>\n  <short>{zone}</short>\n'
        f"{BUILTIN_ZONES.get(zone, '')}</zone>\n"
    )


def _zone_allows(root: ET.Element, port: int) -> bool:
    if port == SSH_SERVICE_PORT and any(e.get("name") == "ssh" for e in root.iter("service")):
        return True
    return any(
        element.get("protocol", "tcp") == "tcp"
        and _port_in(element.get("port", "").replace("-", ":"), port)
        for element in root.findall("port")
    )


def allow_in_zone(text: str, ports: Sequence[int]) -> str:
    """firewalld zone XML that allows ``ports`` (``ssh`` service for 22, else ``<port>``)."""
    root = ET.fromstring(text)  # noqa: S314 - a guest config file, parsed without entities
    added = []
    for port in ports:
        if _zone_allows(root, port):
            continue
        if port == SSH_SERVICE_PORT:
            added.append('  <service name="ssh"/>\n')
        else:
            added.append(f'  <port protocol="tcp" port="{port}"/>\n')
    if not added:
        return text
    closing = text.rfind("</zone>")
    if closing < 0:
        raise FixFailedError("the firewalld zone file has no </zone> to add the SSH rule before")
    line_start = text.rfind("\n", 0, closing) + 1
    if text[line_start:closing].strip():
        return text[:closing] + "\n" + "".join(added) + text[closing:]
    return text[:line_start] + "".join(added) + text[line_start:]


def _firewalld(
    files: GuestFS, mode: FirewallMode, ports: Sequence[int]
) -> list[Change]:
    enabled = unit_enabled(files, "firewalld.service")
    if not enabled and not files.exists(FIREWALLD_CONF):
        return []
    if mode == "disable":
        return disable_unit(files, "firewalld.service") if enabled else []
    zone = _default_zone(files)
    try:
        text = allow_in_zone(_zone_text(files, zone), ports)
    except ET.ParseError as error:
        raise FixFailedError(
            f"the guest's firewalld zone {zone} is not valid XML: {error}"
        ) from error
    path = f"/etc/firewalld/zones/{zone}.xml"
    if files.read_text(path) == text:
        return []
    changes: list[Change] = []
    if not files.exists("/etc/firewalld/zones"):
        changes += files.ensure_dir("/etc/firewalld/zones", mode=0o750, owner=(0, 0))
    return changes + files.write_file(path, text.encode(), mode=0o644, owner=(0, 0))


# -- nftables ----------------------------------------------------------------------------------

_CHAIN = re.compile(r"^\s*chain\s+\S+\s*\{\s*$")
_INPUT_HOOK = re.compile(r"\btype\s+filter\s+hook\s+input\b")
_POLICY_DROP = re.compile(r"\bpolicy\s+drop\b")
_DROP_RULE = re.compile(r"\b(drop|reject)\b")


def _nft_accepts(line: str, port: int) -> bool:
    if "accept" not in line or "dport" not in line or re.search(r"\bs(addr|port)\b", line):
        return False
    spec = re.search(r"tcp\s+dport\s+(\{[^}]*\}|\S+)", line)
    if spec is None:
        return False
    values = spec.group(1).strip("{} ").replace(" ", "").replace("-", ":")
    return _port_in(values.replace("ssh", str(SSH_SERVICE_PORT)), port)


def allow_in_nftables(text: str, ports: Sequence[int]) -> str:
    """nft ruleset text where input chains that may drop accept ``tcp dport`` ``ports`` first."""
    lines = text.splitlines(keepends=True)
    index = 0
    while index < len(lines):
        if not _CHAIN.match(lines[index]):
            index += 1
            continue
        depth, end = 1, index + 1
        while end < len(lines) and depth:
            depth += lines[end].count("{") - lines[end].count("}")
            end += 1
        body = lines[index + 1 : end - 1]
        hook = next((i for i, line in enumerate(body) if _INPUT_HOOK.search(line)), None)
        if hook is None:
            index = end
            continue
        at = hook + 1
        if at < len(body) and re.match(r"^\s*policy\s+\w+\s*;", body[at]):
            at += 1
        rules = [line for line in body[at:] if line.strip() and not line.strip().startswith("#")]
        may_drop = any(_POLICY_DROP.search(line) for line in body[:at]) or any(
            _DROP_RULE.search(line) for line in rules
        )
        indent = body[hook][: len(body[hook]) - len(body[hook].lstrip())] or "\t\t"
        insert = []
        for port in ports:
            first = next((r for r in rules if _nft_accepts(r, port) or _DROP_RULE.search(r)), None)
            if may_drop and (first is None or not _nft_accepts(first, port)):
                insert.append(f"{indent}tcp dport {port} accept\n")
        lines[index + 1 + at : index + 1 + at] = insert
        index = end + len(insert)
    return "".join(lines)


def _nft_files(files: GuestFS) -> list[str]:
    found: list[str] = []

    def visit(path: str, depth: int) -> None:
        text = files.read_text(path)
        if text is None or path in found or depth > MAX_INCLUDE_DEPTH:
            return
        found.append(path)
        for match in re.finditer(r'(?m)^\s*include\s+"([^"*?]+)"', text):
            visit(match.group(1), depth + 1)

    for path in NFT_FILES:
        visit(path, 0)
    return found


def _nft_includes_unusable(files: GuestFS, texts: Sequence[str]) -> bool:
    """Whether an ``include`` (globs too) of these rulesets names a FIFO, a device or a huge
    file: ``nft -c`` would block on it or read without end."""
    for text in texts:
        for match in re.finditer(r'(?m)^\s*include\s+"([^"]+)"', text):
            pattern = match.group(1)
            directory, name = posixpath.split(pattern)
            if not directory.startswith("/"):
                continue
            names = (
                [n for n in files.listdir(directory) if fnmatch.fnmatchcase(n, name)]
                if re.search(r"[*?[]", name)
                else [name]
            )
            for found in names:
                info = files.stat(posixpath.join(directory, found))
                if info is not None and not info.is_dir and (
                    not info.is_file or info.size > MAX_READ
                ):
                    return True
    return False


def _nft_check(files: GuestFS, path: str, text: str) -> None:
    """``nft -c`` of the edited ruleset in the sandbox; ``FixFailedError`` when it rejects what
    the guest's own file passes. Not run (like a guest without nft) when an include would
    make nft block."""
    program = guest_program(files, "/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft")
    if program is None:
        return
    texts = [text, *(files.read_text(p) or "" for p in _nft_files(files))]
    if _nft_includes_unusable(files, texts):
        return
    result = run_in_guest(files, [program, "-c", "-f", "-"], stdin=text.encode())
    if result.ok or cannot_run(result):
        return
    old = run_in_guest(files, [program, "-c", "-f", path])
    if old.ok:
        raise FixFailedError(f"the edited {path} fails `nft -c`: {result.stderr.strip()}")


def _nftables(files: GuestFS, mode: FirewallMode, ports: Sequence[int]) -> list[Change]:
    if mode == "disable":
        enabled = unit_enabled(files, "nftables.service")
        return disable_unit(files, "nftables.service") if enabled else []
    changes: list[Change] = []
    for path in _nft_files(files):
        old = files.read_text(path) or ""
        new = allow_in_nftables(old, ports)
        if new != old:
            _nft_check(files, path, new)
            changes += files.write_file(path, new.encode())
    return changes


Handler = Callable[[GuestFS, FirewallMode, Sequence[int]], list[Change]]
HANDLERS: tuple[Handler, ...] = (
    _ufw,
    _firewalld,
    _iptables,
    _nftables,
)


def allow_ssh(
    guest: Guest, *, mode: FirewallMode = "allow", ports: Sequence[int] | None = None
) -> list[Change]:
    """Let TCP ``ports`` (default: the guest sshd's) through every firewall the guest has, or
    (``mode="disable"``) keep them all from loading at boot. Idempotent."""
    files = guest.files
    wanted = sorted(set(ports)) if ports else ssh_ports(files)
    if any(not 0 < port < 65536 for port in wanted):
        raise InvalidInputError(f"invalid TCP port in {wanted}")
    changes: list[Change] = []
    for handler in HANDLERS:
        changes += handler(files, mode, wanted)
    if changes:
        changes += files.request_selinux_relabel()
    return changes
