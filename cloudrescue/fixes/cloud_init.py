"""Reset cloud-init's state so the next boot is a first boot: keys and user data re-applied.

What ``cloud-init clean`` does, through ``GuestFS``: every entry of ``/var/lib/cloud`` but
``seed`` (instance data, semaphores, the instance symlink) is moved aside to a
``*.cloudrescue-<stamp>`` name cloud-init never reads, so it can be restored; logs are kept.
A ``/etc/cloud/cloud-init.disabled`` marker is moved aside too.
"""

from __future__ import annotations

from cloudrescue.fixes.common import move_aside
from cloudrescue.guest import Guest
from cloudrescue.guestfs import Change

CLOUD_DIR = "/var/lib/cloud"
KEPT = frozenset({"seed"})
DISABLED_MARKER = "/etc/cloud/cloud-init.disabled"


def reset_cloud_init(guest: Guest) -> list[Change]:
    """Make cloud-init treat the next boot as the instance's first. Idempotent."""
    files = guest.files
    changes: list[Change] = []
    for name in files.listdir(CLOUD_DIR):
        if name not in KEPT and ".cloudrescue-" not in name:
            changes += move_aside(files, f"{CLOUD_DIR}/{name}")
    changes += files.remove(DISABLED_MARKER)
    if changes:
        changes += files.request_selinux_relabel()
    return changes
