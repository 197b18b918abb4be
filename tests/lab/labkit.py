"""Helpers for the lab's end-to-end tests: SSH outcomes and the "nothing left behind" check."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import paramiko

SSH_TIMEOUT = 4.0
TCP_TIMEOUT = 2.0


def ssh_client(
    address: str,
    user: str,
    *,
    key: Path | None = None,
    password: str | None = None,
    port: int = 22,
) -> paramiko.SSHClient:
    """A logged-in paramiko client (raises what paramiko raises)."""
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # noqa: S507 - lab test hosts
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
    )
    return client


def run_ssh(client: paramiko.SSHClient, command: str) -> tuple[int, str]:
    """Exit status and stdout of ``command``."""
    _, stdout, _ = client.exec_command(command, timeout=30)
    output = stdout.read().decode()
    return stdout.channel.recv_exit_status(), output


def key_login(address: str, user: str, key: Path, port: int = 22) -> str:
    """``ok`` when ``user`` logs in with ``key`` and runs a command, else why not."""
    try:
        client = ssh_client(address, user, key=key, port=port)
    except TimeoutError:
        return "timeout"
    except paramiko.AuthenticationException:
        return "key refused"
    except (paramiko.SSHException, OSError) as error:
        return f"unreachable: {error}"
    try:
        status, output = run_ssh(client, "echo logged-in")
    except (paramiko.SSHException, OSError) as error:
        return f"session failed: {error}"
    finally:
        client.close()
    return "ok" if status == 0 and "logged-in" in output else f"command failed ({status})"


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
