"""SELinux: relabel the guest at next boot, and optionally make it permissive.

Files written from a rescue system carry no (or wrong) SELinux labels; an enforcing guest
may then refuse logins. ``/.autorelabel`` makes it relabel every file at next boot.
"""

from __future__ import annotations

import re

from cloudrescue.disks.session import MountedGuest
from cloudrescue.guestfs import Change, GuestFS
from cloudrescue.remote.base import Host

SELINUX_CONFIG = "/etc/selinux/config"


def relabel_selinux(
    guest: GuestFS, host: Host, mounted: MountedGuest, *, permissive: bool = False
) -> list[Change]:
    """Request a full relabel (``/.autorelabel``); with ``permissive``, set
    ``SELINUX=permissive``. Nothing to do on guests without SELinux or with it disabled."""
    mode = guest.selinux_mode()
    if mode not in ("enforcing", "permissive"):
        return []
    changes: list[Change] = []
    if permissive and mode == "enforcing":
        text = guest.read_text(SELINUX_CONFIG) or ""
        new = re.sub(r"(?m)^(\s*SELINUX\s*=\s*)\S+", r"\1permissive", text)
        changes += guest.write_file(SELINUX_CONFIG, new.encode())
    if not guest.exists("/.autorelabel"):
        changes += guest.write_file("/.autorelabel", b"", mode=0o644, owner=(0, 0))
    return changes
