"""The instance's disk as every fix and action receives it: its files and how it is mounted.

``Guest.files`` is the root-anchored file layer (``GuestFS``: atomic, backed-up writes that
never leave the guest root, check mode); ``Guest.mount`` is what the disk session mounted
(root filesystem, fstab mounts, chroot binds, what it skipped and why). The rescue system the
disk is attached to is ``guest.host``.
"""

from __future__ import annotations

from dataclasses import dataclass

from cloudrescue.disks.session import MountedGuest
from cloudrescue.guestfs import GuestFS
from cloudrescue.remote.base import Host


@dataclass(frozen=True)
class Guest:
    """The mounted guest: ``files`` to read and change it, ``mount`` to know how it sits."""

    files: GuestFS
    mount: MountedGuest

    @property
    def host(self) -> Host:
        """The rescue system the guest's disk is mounted on."""
        return self.files.host

    @property
    def dry_run(self) -> bool:
        """Check mode: changes are computed and shown, never written."""
        return self.files.dry_run
