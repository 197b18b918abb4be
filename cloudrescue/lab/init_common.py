"""Steps shared by the guest's and the rescue's init: network, host keys, reporting, sshd."""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path
from typing import NoReturn

from cloudrescue.lab.consolelog import Console, HostKeys
from cloudrescue.lab.system import run

KEY_TYPES = ("rsa", "ecdsa", "ed25519")
DEFAULT_SSH_PORT = 22


def report(
    fd: int,
    outcome: str,
    *,
    sshd: bool,
    ports: list[int] | None = None,
    host_keys: HostKeys | None = None,
) -> None:
    """Tell the runtime how the boot went (one JSON line on the report pipe) and close it.

    ``ports`` are the TCP ports sshd will listen on; ``host_keys`` the announcement the
    runtime is to print later (a rescue whose cloud-init is slower than nova).
    """
    message: dict[str, object] = {"outcome": outcome, "sshd": sshd}
    if ports is not None:
        message["ports"] = ports
    if host_keys is not None:
        message["host_keys"] = host_keys.to_json()
    os.write(fd, (json.dumps(message) + "\n").encode())
    os.close(fd)


def configure_eth0(
    addresses: list[str], console: Console, mac: str, gateway: str | None = None
) -> None:
    """Give eth0 exactly ``addresses`` (down when there are none), the subnet route and, when
    ``gateway`` is on one of those subnets, the default route through it."""
    run(["ip", "addr", "flush", "dev", "eth0"])
    if not addresses:
        run(["ip", "link", "set", "eth0", "down"])
        console.cloud_init(
            f"ci-info: | eth0 | False |      .      |       .       |   .    | {mac} |"
        )
        return
    run(["ip", "link", "set", "eth0", "up"])
    for address in addresses:
        run(["ip", "addr", "add", address, "dev", "eth0"])
        ip, _, prefix = address.partition("/")
        console.cloud_init(f"ci-info: | eth0 | True | {ip} | /{prefix} | global | {mac} |")
    if gateway is not None and any(
        ipaddress.IPv4Address(gateway) in ipaddress.IPv4Interface(address).network
        for address in addresses
    ):
        run(["ip", "route", "add", "default", "via", gateway, "dev", "eth0"])


def ensure_host_keys(root: Path) -> list[Path]:
    """Generate the host keys the disk lacks (its own ``ssh-keygen -A``); their ``.pub`` files."""
    run(["chroot", str(root), "ssh-keygen", "-A"])
    keys = [root / f"etc/ssh/ssh_host_{kind}_key.pub" for kind in KEY_TYPES]
    return [key for key in keys if key.is_file()]


def forged_keys(hostname: str, directory: Path) -> list[Path]:
    """Public keys of throwaway host keys made in ``directory`` (for a lying console)."""
    directory.mkdir(parents=True, exist_ok=True)
    for kind in ("ecdsa", "ed25519"):
        run(
            [
                "ssh-keygen",
                "-q",
                "-t",
                kind,
                "-N",
                "",
                "-C",
                f"root@{hostname}",
                "-f",
                str(directory / f"ssh_host_{kind}_key"),
            ]
        )
    return [directory / f"ssh_host_{kind}_key.pub" for kind in ("ecdsa", "ed25519")]


def check_sshd(root: Path) -> str | None:
    """The error of the disk's own ``sshd -t`` (None when the configuration is valid)."""
    result = run(["chroot", str(root), "/usr/sbin/sshd", "-t"], check=False)
    if result.returncode == 0:
        return None
    return (result.stderr or result.stdout).strip() or f"sshd -t exited {result.returncode}"


def listen_ports(root: Path) -> list[int]:
    """The TCP ports the disk's own sshd will listen on, as its ``sshd -T`` says.

    The disk's sshd is the authority on its configuration (``Include`` of drop-ins, ``Port``
    given several times — every one counts —, ``ListenAddress host:port``); the lab only reads
    the ports off the effective configuration it prints. 22 when it prints none.
    """
    return effective_ports(run(["chroot", str(root), "/usr/sbin/sshd", "-T"], check=False).stdout)


def effective_ports(config: str) -> list[int]:
    """The listening ports in ``sshd -T`` output: its ``listenaddress`` lines (sshd prints one
    per address and port it binds), else its ``port`` lines, else 22."""
    ports: list[int] = []
    listen: list[int] = []
    for line in config.splitlines():
        keyword, _, value = line.strip().partition(" ")
        if keyword == "port" and value.isdigit():
            ports.append(int(value))
        elif keyword == "listenaddress" and value.rpartition(":")[2].isdigit():
            listen.append(int(value.rpartition(":")[2]))
    return list(dict.fromkeys(listen or ports)) or [DEFAULT_SSH_PORT]


def start_sshd(
    root: Path,
    console: Console,
    fd: int,
    *,
    issue: str,
    hostname: str,
    deferred_host_keys: HostKeys | None = None,
) -> NoReturn:
    """Check the disk's sshd configuration, report, and become sshd (or idle when it fails).

    ``issue`` is the console's login banner line (``Debian GNU/Linux 12 host ttyS0``);
    ``deferred_host_keys`` goes to the runtime with the report, for it to print later.
    """
    error = check_sshd(root)
    if error is not None:
        console.failed("Failed to start ssh.service - OpenBSD Secure Shell server.")
        for line in error.splitlines():
            console.line(f"sshd: {line}")
        console.close()
        report(fd, "running", sshd=False, host_keys=deferred_host_keys)
        idle()
    ports = listen_ports(root)
    console.ok("Started ssh.service - OpenBSD Secure Shell server.")
    console.line()
    console.line(issue)
    console.line()
    console.line(f"{hostname} login: ")
    console.close()
    report(fd, "running", sshd=True, ports=ports, host_keys=deferred_host_keys)
    exec_sshd(root)


def pretty_name(root: Path) -> str:
    """``PRETTY_NAME`` of the disk's os-release."""
    try:
        for line in (root / "etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except FileNotFoundError:
        pass
    return "Linux"


def exec_sshd(root: Path) -> NoReturn:
    """Replace this process with the disk's own sshd, in the foreground, logging to stderr."""
    os.chdir("/")
    os.execv("/usr/sbin/chroot", ["chroot", str(root), "/usr/sbin/sshd", "-D", "-e"])  # noqa: S606


def idle() -> NoReturn:
    """Replace this process with one that does nothing (a system up without sshd)."""
    os.execv("/bin/sleep", ["sleep", "infinity"])  # noqa: S606
