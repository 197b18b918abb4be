"""The rescue system's SSH session, able to log in again when the connection was cut.

Everything the run holds (the disk session, the guest's files) talks to this one object, so
after ``reconnect`` the cleanup (rollback, unmount) goes on over the new connection. A
reconnection verifies the host key exactly as the first login did. Operations are never
retried on their own: only the cleanup paths decide to reconnect.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from cloudrescue.errors import CloudRescueError
from cloudrescue.remote.base import CommandResult, FileStat, RemoteHost, TerminalRequest


class ReconnectingHost:
    """A ``RemoteHost`` made by ``login``, which ``reconnect`` calls again."""

    def __init__(self, login: Callable[[], RemoteHost]) -> None:
        self._login = login
        self._host = login()
        self.reconnections = 0

    def reconnect(self) -> None:
        """Drop the (cut) connection and log in again; raises what the login raises."""
        with contextlib.suppress(OSError, CloudRescueError):  # it was cut: closing is courtesy
            self._host.close()
        self._host = self._login()
        self.reconnections += 1

    @property
    def description(self) -> str:
        return self._host.description

    @property
    def host_key_fingerprint(self) -> str:
        return self._host.host_key_fingerprint

    def host_key_entry(self) -> str:
        return self._host.host_key_entry()

    def close(self) -> None:
        self._host.close()

    def open_channel(self, command: str, *, terminal: TerminalRequest | None = None) -> Any:
        return self._host.open_channel(command, terminal=terminal)

    def run(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes | None = None,
        check: bool = True,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
    ) -> CommandResult:
        return self._host.run(argv, stdin=stdin, check=check, timeout=timeout, env=env)

    def lstat(self, path: str) -> FileStat | None:
        return self._host.lstat(path)

    def readlink(self, path: str) -> str:
        return self._host.readlink(path)

    def listdir(self, path: str) -> list[str]:
        return self._host.listdir(path)

    def read_file(self, path: str) -> bytes:
        return self._host.read_file(path)

    def write_file(self, path: str, data: bytes, *, mode: int) -> None:
        self._host.write_file(path, data, mode=mode)

    def fsync(self, path: str) -> None:
        self._host.fsync(path)

    def rename(self, source: str, target: str) -> None:
        self._host.rename(source, target)

    def mkdir(self, path: str, mode: int) -> None:
        self._host.mkdir(path, mode)

    def chmod(self, path: str, mode: int) -> None:
        self._host.chmod(path, mode)

    def chown(self, path: str, uid: int, gid: int) -> None:
        self._host.chown(path, uid, gid)

    def unlink(self, path: str) -> None:
        self._host.unlink(path)

    def symlink(self, target: str, path: str) -> None:
        self._host.symlink(target, path)
