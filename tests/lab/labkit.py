"""Helpers for the lab's end-to-end tests: SSH outcomes and the "nothing left behind" check.

Every SSH login here pins the server's host key (no ``AutoAddPolicy``): the key must be one of
the host keys of the system the lab runs at that address, read from that system's own root
tree (``/etc/ssh/ssh_host_*_key.pub``, through ``/proc/<its pid 1>/root``: the system entered
its root with ``pivot_root``, so that is its ``/``; symlinks resolved inside the tree).
``key_login`` accepts only the *instance's own* keys, from the disk its guest booted, so an
``ok`` proves the instance's own sshd answered (not its rescue system's, nor anything else at
its address). ``ssh_client`` accepts whatever the lab runs there (the guest, a rescue system,
the bastion), pinned the same way.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import paramiko

from cloudrescue.keys import fingerprint_of_blob
from cloudrescue.lab.guest_files import anchored
from cloudrescue.lab.processes import children

SSH_TIMEOUT = 4.0
TCP_TIMEOUT = 2.0

SystemKind = Literal["guest", "rescue", "bastion"]
INIT_MODULES: dict[str, SystemKind] = {
    "cloudrescue.lab.guest_init": "guest",
    "cloudrescue.lab.rescue_init": "rescue",
    "cloudrescue.lab.bastion_init": "bastion",
}
HOST_KEY_TYPES = ("ed25519", "ecdsa", "rsa")  # the order paramiko is asked to prefer them in
ANY_SYSTEM: tuple[SystemKind, ...] = ("guest", "rescue", "bastion")


class NotPinnedError(paramiko.SSHException):
    """No lab system of the wanted kind runs at the address: there is no key to accept."""


@dataclass(frozen=True)
class LabSystem:
    """A system the lab runs (an instance's guest or rescue system, or the bastion)."""

    kind: SystemKind
    instance_id: str | None
    addresses: tuple[str, ...]
    root: Path  # its root tree (``system_root``)
    pid: int  # its init (the outer ``unshare`` of its namespaces)

    def host_keys(self) -> list[paramiko.PKey]:
        """The public host keys in its own ``/etc/ssh`` (what its sshd serves)."""
        found: list[paramiko.PKey] = []
        for kind in HOST_KEY_TYPES:
            try:
                path = anchored(self.root, f"/etc/ssh/ssh_host_{kind}_key.pub")
                fields = path.read_text().split()
            except OSError:
                continue
            if len(fields) >= 2:
                found.append(paramiko.PKey.from_type_string(fields[0], base64.b64decode(fields[1])))
        return found

    def fingerprints(self) -> set[str]:
        """``SHA256:...`` of each of its host keys."""
        return {fingerprint_of_blob(key.asbytes()) for key in self.host_keys()}


def _init_of(proc: Path) -> tuple[SystemKind, Path] | None:
    """The kind and plan of a lab init's outer process (``unshare ... -m <module> <plan>``)."""
    try:
        if (proc / "comm").read_text().strip() != "unshare":
            return None
        argv = [
            word.decode(errors="replace") for word in (proc / "cmdline").read_bytes().split(b"\0")
        ]
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None
    if state == "Z" or "-m" not in argv:
        return None
    at = argv.index("-m")
    kind = INIT_MODULES.get(argv[at + 1]) if at + 2 < len(argv) else None
    return (kind, Path(argv[at + 2])) if kind else None


def system_root(init_pid: int) -> Path | None:
    """The root of the system a lab init runs, ``/proc/<its pid 1>/root`` (the only child of
    the outer ``unshare``), once it has entered it; None before (its init still sees this
    machine's tree) or when it is gone."""
    try:
        [pid] = children(init_pid)
        root = Path(f"/proc/{pid}/root")
        entered, here = root.stat(), os.stat("/")
    except (ValueError, OSError):
        return None
    return None if (entered.st_dev, entered.st_ino) == (here.st_dev, here.st_ino) else root


def lab_systems(address: str | None = None) -> list[LabSystem]:
    """Every running lab system of this machine (of every lab), or those at ``address``."""
    found: list[LabSystem] = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        init = _init_of(proc)
        if init is None:
            continue
        kind, plan_path = init
        try:
            plan: dict[str, Any] = json.loads(plan_path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        addresses = tuple(
            str(plan[field]).split("/")[0]
            for field in ("address", "private_address")
            if plan.get(field)
        )
        if address is not None and address not in addresses:
            continue
        root = system_root(int(proc.name))
        if root is None:
            continue
        found.append(LabSystem(kind, plan.get("instance_id"), addresses, root, int(proc.name)))
    return found


def pinned_host_keys(address: str, kinds: Sequence[SystemKind] = ANY_SYSTEM) -> list[paramiko.PKey]:
    """The host keys a server at ``address`` may present: those of the lab's systems of
    ``kinds`` there (empty when none runs there)."""
    return [
        key for system in lab_systems(address) if system.kind in kinds for key in system.host_keys()
    ]


def _pinned_client(address: str, port: int, kinds: Sequence[SystemKind]) -> paramiko.SSHClient:
    keys = pinned_host_keys(address, kinds)
    if not keys:
        running = ", ".join(sorted({system.kind for system in lab_systems(address)}))
        raise NotPinnedError(
            f"no lab {'/'.join(kinds)} runs at {address} (it runs: {running or 'nothing'}): "
            "no host key to accept"
        )
    client = paramiko.SSHClient()
    known = client.get_host_keys()
    name = address if port == 22 else f"[{address}]:{port}"
    for key in keys:
        known.add(name, key.get_name(), key)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    return client


def ssh_client(
    address: str,
    user: str,
    *,
    key: Path | None = None,
    password: str | None = None,
    port: int = 22,
    kinds: Sequence[SystemKind] = ANY_SYSTEM,
    sock: Any = None,
) -> paramiko.SSHClient:
    """A logged-in paramiko client (raises what paramiko raises) whose server presented a
    host key of the lab system of ``kinds`` at ``address`` (``sock``: a channel to it, e.g.
    ``jump_channel``)."""
    client = _pinned_client(address, port, kinds)
    try:
        client.connect(
            address,
            port=port,
            username=user,
            password=password,
            pkey=paramiko.Ed25519Key.from_private_key_file(str(key)) if key else None,
            look_for_keys=False,
            allow_agent=False,
            timeout=SSH_TIMEOUT,
            banner_timeout=SSH_TIMEOUT,
            auth_timeout=SSH_TIMEOUT,
            sock=sock,
        )
    except BaseException:
        client.close()
        raise
    return client


def jump_channel(
    bastion: dict[str, Any], address: str, port: int = 22
) -> tuple[paramiko.SSHClient, paramiko.Channel]:
    """A ``direct-tcpip`` channel to ``address:port`` through the lab's bastion (the view
    ``POST /lab/v1/bastion`` answers), the bastion's own host key pinned; close the client."""
    client = ssh_client(
        bastion["address"], bastion["user"], key=Path(bastion["key"]), kinds=("bastion",)
    )
    transport = client.get_transport()
    assert transport is not None
    try:
        channel = transport.open_channel(
            "direct-tcpip", (address, port), ("127.0.0.1", 0), timeout=SSH_TIMEOUT
        )
    except BaseException:
        client.close()
        raise
    return client, channel


def run_ssh(client: paramiko.SSHClient, command: str) -> tuple[int, str]:
    """Exit status and stdout of ``command``."""
    _, stdout, _ = client.exec_command(command, timeout=30)
    output = stdout.read().decode()
    return stdout.channel.recv_exit_status(), output


def key_login(
    address: str, user: str, key: Path, port: int = 22, *, via: dict[str, Any] | None = None
) -> str:
    """``ok`` when ``user`` logs in with ``key`` to the **instance's own sshd** at ``address``
    (its host key is one on the disk its guest booted) and runs a command, else why not.
    ``via``: the lab's bastion (``POST /lab/v1/bastion``), for an instance on the private
    network."""
    jump: paramiko.SSHClient | None = None
    try:
        try:
            sock = None
            if via is not None:
                jump, sock = jump_channel(via, address, port)
            client = ssh_client(address, user, key=key, port=port, kinds=("guest",), sock=sock)
        except TimeoutError:
            return "timeout"
        except paramiko.AuthenticationException:
            return "key refused"
        except paramiko.BadHostKeyException as error:
            served = fingerprint_of_blob(error.key.asbytes())
            return f"unreachable: {address} answered with host key {served}, not the instance's"
        except (paramiko.SSHException, OSError) as error:
            return f"unreachable: {error}"
        try:
            status, output = run_ssh(client, "echo logged-in")
        except (paramiko.SSHException, OSError) as error:
            return f"session failed: {error}"
        finally:
            client.close()
        return "ok" if status == 0 and "logged-in" in output else f"command failed ({status})"
    finally:
        if jump is not None:
            jump.close()


def tcp_open(address: str, port: int = 22) -> bool:
    """Whether a TCP connection to ``address:port`` succeeds."""
    try:
        with socket.create_connection((address, port), timeout=TCP_TIMEOUT):
            return True
    except OSError:
        return False


def recorded_loops(state_dir: Path) -> set[tuple[str, str]]:
    """(loop name, backing file) of every loop device the lab's ledger ever recorded."""
    try:
        lines = (state_dir / "ledger.jsonl").read_text().splitlines()
    except FileNotFoundError:
        return set()
    records = [json.loads(line) for line in lines if line.strip()]
    return {
        (r["data"]["name"], r["data"]["backing"])
        for r in records
        if r.get("kind") == "loop" and "name" in r.get("data", {})
    }


def leftovers(state_dir: Path, lab_id: str, loops: set[tuple[str, str]] | None = None) -> list[str]:
    """Everything of the lab that still exists on the machine (empty when all is gone).

    ``loops`` (from ``recorded_loops`` before the teardown) also catches loop devices whose
    backing file is outside the state dir (the shared rescue image in the cache).
    """
    found: list[str] = []
    netns = subprocess.run(["ip", "-j", "netns", "list"], capture_output=True, text=True).stdout
    for entry in json.loads(netns or "[]"):
        if entry["name"].startswith(f"crl{lab_id}-"):
            found.append(f"netns {entry['name']}")
    for link in os.listdir("/sys/class/net"):
        if link.startswith((f"crl{lab_id}", f"crv{lab_id}")):
            found.append(f"link {link}")
    state = str(state_dir.resolve())
    for loop in Path("/sys/block").glob("loop*"):
        try:
            backing = (loop / "loop/backing_file").read_text().strip()
        except FileNotFoundError:
            continue
        if backing.startswith(state) or (loop.name, backing) in (loops or set()):
            found.append(f"loop {loop.name} -> {backing}")
    if (
        subprocess.run(
            ["nft", "list", "table", "inet", f"crl_{lab_id}"], capture_output=True
        ).returncode
        == 0
    ):
        found.append(f"nft table crl_{lab_id}")
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            stat = (proc / "stat").read_text()
        except OSError:
            continue
        if state in cmdline and stat.rsplit(")", 1)[1].split()[0] != "Z":
            found.append(f"process {proc.name}: {cmdline[:80]}")
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        if state in line:
            found.append(f"mount {line.split()[4]}")
    return found
