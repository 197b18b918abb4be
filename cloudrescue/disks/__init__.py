"""Finding the instance's disk on the rescue system, mounting it, and unmounting it again.

``DiskSession`` is the entry point; everything runs through a ``Host`` (SSH or local).
"""

from cloudrescue.disks.discovery import DiskInventory, Filesystem, SeenDevice
from cloudrescue.disks.errors import (
    MountFailedError,
    MountpointInUseError,
    NoDiskFoundError,
    SeveralRootsError,
)
from cloudrescue.disks.fstab import FstabEntry
from cloudrescue.disks.lvm import LvDevice
from cloudrescue.disks.probe import ProbeResult, RootFilesystem
from cloudrescue.disks.session import (
    AskRoot,
    DiskSession,
    MountedGuest,
    MountRecord,
    SkippedMount,
)
from cloudrescue.disks.teardown import UnmountReport

__all__ = [
    "AskRoot",
    "DiskInventory",
    "DiskSession",
    "Filesystem",
    "FstabEntry",
    "LvDevice",
    "MountFailedError",
    "MountRecord",
    "MountedGuest",
    "MountpointInUseError",
    "NoDiskFoundError",
    "ProbeResult",
    "RootFilesystem",
    "SeenDevice",
    "SeveralRootsError",
    "SkippedMount",
    "UnmountReport",
]
