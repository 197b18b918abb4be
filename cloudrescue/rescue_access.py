"""Making a held rescue system easy to log in to: the user's key, a verified known_hosts."""

from __future__ import annotations

import os
from pathlib import Path

from cloudrescue.keys import PublicKey
from cloudrescue.remote.base import Host

KNOWN_HOSTS = "known_hosts"


def authorize_rescue_keys(host: Host, keys: list[PublicKey]) -> None:
    """Add ``keys`` to root's authorized_keys on the (ephemeral) rescue system."""
    if host.lstat("/root/.ssh") is None:
        host.mkdir("/root/.ssh", 0o700)
    path = "/root/.ssh/authorized_keys"
    current = host.read_file(path).decode() if host.lstat(path) is not None else ""
    lines = current.splitlines()
    lines += [key.line for key in keys if key.line not in lines]
    host.write_file(path, ("\n".join(lines) + "\n").encode(), mode=0o600)


def remember_host_key(state_dir: Path, address: str, key_entry: str) -> Path:
    """Record a verified rescue host key (``type base64``) in cloudrescue's own known_hosts.

    The user's ``~/.ssh/known_hosts`` is left alone: a rescue reuses the instance's address
    with a new key, which would otherwise trip (or pollute) it.
    """
    path = state_dir / KNOWN_HOSTS
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    kept = [
        line
        for line in (path.read_text().splitlines() if path.exists() else [])
        if line.split(" ", 1)[0] != address
    ]
    kept.append(f"{address} {key_entry}")
    temporary = path.with_suffix(".tmp")
    temporary.write_text("\n".join(kept) + "\n")
    os.replace(temporary, path)
    return path
