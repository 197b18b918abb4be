"""``Seen``: what a diagnosis saw of an instance before judging it; every source of findings
reads it."""

from __future__ import annotations

from dataclasses import dataclass

from cloudrescue.cloud.base import ServerInfo
from cloudrescue.diagnose.console import Boot
from cloudrescue.diagnose.probe import PortProbe


@dataclass(frozen=True)
class Seen:
    """The instance as the API gave it, the address probed (None: none), the console's last
    boot (empty when it was not read), and the probes of sshd's ports.

    ``user`` is the user keys were checked for, ``user_source`` how it was told (``--user``,
    cloud-init's table of authorized keys on the console, the console's OS name),
    ``user_guessed`` whether it was guessed from the console's OS name; ``key_files`` the
    files the keys came from.
    """

    server: ServerInfo
    address: str | None
    boot: Boot
    probes: tuple[PortProbe, ...] = ()
    user: str | None = None
    user_guessed: bool = False
    user_source: str | None = None
    key_files: tuple[str, ...] = ()
