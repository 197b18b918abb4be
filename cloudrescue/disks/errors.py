"""Errors of disk discovery and mounting (all ``DiskError``: exit status ``DISK``)."""

from __future__ import annotations

from cloudrescue.errors import DiskError


class NoDiskFoundError(DiskError):
    """No filesystem of the instance looks like a root (the message says what was seen)."""


class SeveralRootsError(DiskError):
    """Several root filesystems were found and nothing says which one to use."""

    def __init__(self, message: str, *, candidates: list[str], hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.candidates = candidates


class MountFailedError(DiskError):
    """A filesystem of the instance could not be mounted or prepared (LVM, loop device)."""


class MountpointInUseError(DiskError):
    """The requested mountpoint already has something mounted on it, or is not a directory."""
