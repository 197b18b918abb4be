"""Steps shared by the lab's inits: network, host keys, reporting, entering the root, sshd.

A system enters its root with ``pivot_root`` (``enter_root``), never ``chroot``: a chrooted
process may not make a user namespace (the kernel answers EPERM), so the sessions of a
chrooted sshd could not run cloudrescue's sandbox (``cloudrescue/fixes/sandbox.py``), which a
real rescue system runs. The commands an init runs on the disk before that (``ssh-keygen -A``,
``sshd -t``, ``sshd -T``, the boot firewall, ``chpasswd``) stay chrooted: short-lived, they
make no session, and the init still needs the host's tree around them (its own code, host
tools, the overlay's layers); after the pivot it only writes the console and the report
(descriptors it holds) and execs.
"""

from __future__ import annotations

import ctypes
import ipaddress
import json
import os
import signal
from pathlib import Path
from typing import NoReturn

from cloudrescue.disks.mountinfo import parse_mountinfo
from cloudrescue.lab.consolelog import Console, HostKeys
from cloudrescue.lab.system import run

KEY_TYPES = ("rsa", "ecdsa", "ed25519")
DEFAULT_SSH_PORT = 22
SYS_PIVOT_ROOT = 155  # x86_64, the lab's architecture; glibc has no pivot_root() wrapper
CLONE_NEWNS = 0x20000
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MNT_DETACH = 2
_LIBC = ctypes.CDLL(None, use_errno=True)
_LIBC.unshare.argtypes = (ctypes.c_int,)
_LIBC.mount.argtypes = (ctypes.c_char_p,) * 3 + (ctypes.c_ulong, ctypes.c_void_p)
_LIBC.umount2.argtypes = (ctypes.c_char_p, ctypes.c_int)


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


def ensure_host_keys(root: Path, *, rsa_bits: int | None = None) -> list[Path]:
    """Generate the host keys the disk lacks (its own ``ssh-keygen -A``); their ``.pub`` files.

    ``rsa_bits``: the RSA key, when missing, is made that size first (``-A`` makes 3072).
    """
    rsa = root / "etc/ssh/ssh_host_rsa_key"
    if rsa_bits is not None and not rsa.exists():
        argv = ["ssh-keygen", "-q", "-t", "rsa", "-b", str(rsa_bits), "-N", "", "-f"]
        run(["chroot", str(root), *argv, "/etc/ssh/ssh_host_rsa_key"])
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
    """Check the disk's sshd configuration, enter ``root``, report, and become sshd (or idle
    when the check fails).

    ``issue`` is the console's login banner line (``Debian GNU/Linux 12 host ttyS0``);
    ``deferred_host_keys`` goes to the runtime with the report, for it to print later.
    """
    error = check_sshd(root)
    ports = listen_ports(root) if error is None else []
    enter_root(root)
    if error is not None:
        console.failed("Failed to start ssh.service - OpenBSD Secure Shell server.")
        for line in error.splitlines():
            console.line(f"sshd: {line}")
        console.close()
        report(fd, "running", sshd=False, host_keys=deferred_host_keys)
        idle()
    console.ok("Started ssh.service - OpenBSD Secure Shell server.")
    console.line()
    console.line(issue)
    console.line()
    console.line(f"{hostname} login: ")
    console.close()
    report(fd, "running", sshd=True, ports=ports, host_keys=deferred_host_keys)
    exec_sshd()


def pretty_name(root: Path) -> str:
    """``PRETTY_NAME`` of the disk's os-release."""
    try:
        for line in (root / "etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except FileNotFoundError:
        pass
    return "Linux"


def _check(result: int, what: str) -> None:
    if result != 0:
        number = ctypes.get_errno()
        raise OSError(number, f"{what}: {os.strerror(number)}")


def enter_root(root: Path) -> None:
    """Make ``root`` this process's root, for good, as a booting system's init does.

    In a mount namespace of its own (the init's, which the lab reads the system's layers
    through, keeps its view): ``/`` made rprivate, ``root`` bound onto itself (recursively,
    its submounts with it) unless it is a mount point already, ``pivot_root(".", ".")`` into
    it and the old root detached. Nothing of the host's tree stays reachable, and this
    process and its children are not chrooted (their root is their namespace's root).
    """
    target = os.path.realpath(root)
    _check(_LIBC.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _check(_LIBC.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate /")
    mounts = parse_mountinfo(Path("/proc/self/mountinfo").read_text())
    if target not in {mount.mountpoint for mount in mounts}:
        where = os.fsencode(target)
        _check(_LIBC.mount(where, where, None, MS_BIND | MS_REC, None), f"mount --rbind {target}")
    os.chdir(target)
    _check(
        _LIBC.syscall(ctypes.c_long(SYS_PIVOT_ROOT), ctypes.c_char_p(b"."), ctypes.c_char_p(b".")),
        f"pivot_root {target}",
    )
    _check(_LIBC.umount2(b".", MNT_DETACH), "umount --lazy the old root")
    os.chdir("/")


def exec_sshd() -> NoReturn:
    """Replace this process with the system's own sshd (after ``enter_root``), in the
    foreground, logging to stderr."""
    os.execv("/usr/sbin/sshd", ["/usr/sbin/sshd", "-D", "-e"])  # noqa: S606


def idle() -> NoReturn:
    """Do nothing, for good (a system up without sshd; its root may hold no program at all)."""
    while True:
        signal.pause()
