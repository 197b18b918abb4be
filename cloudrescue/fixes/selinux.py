"""SELinux: relabel the guest at next boot, and optionally make it permissive.

Files written from a rescue system carry no (or wrong) SELinux labels; an enforcing guest
may then refuse logins. ``/.autorelabel`` makes it relabel every file at next boot.
"""

from __future__ import annotations

import re

from cloudrescue.guest import Guest
from cloudrescue.guestfs import Change

SELINUX_CONFIG = "/etc/selinux/config"


def relabel_selinux(guest: Guest, *, permissive: bool = False) -> list[Change]:
    """Request a full relabel (``/.autorelabel``); with ``permissive``, set
    ``SELINUX=permissive``. Nothing to do on guests without SELinux or with it disabled."""
    files = guest.files
    mode = files.selinux_mode()
    if mode not in ("enforcing", "permissive"):
        return []
    changes: list[Change] = []
    if permissive and mode == "enforcing":
        text = files.read_text(SELINUX_CONFIG) or ""
        new = re.sub(r"(?m)^(\s*SELINUX\s*=\s*)\S+", r"\1permissive", text)
        changes += files.write_file(SELINUX_CONFIG, new.encode())
    if not files.exists("/.autorelabel"):
        changes += files.write_file("/.autorelabel", b"", mode=0o644, owner=(0, 0))
    return changes
