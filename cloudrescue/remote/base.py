"""The small interface every host that cloudrescue works on implements.

The core (disk discovery, mounting, guest file access, playbooks) only talks to a ``Host``:
``SSHHost`` (the rescue system, over paramiko: exec for commands, SFTP for files) or
``LocalHost`` (this machine, e.g. when cloudrescue itself runs inside a rescue system, and the
lab's own disk tooling). Commands are argument lists, never shell strings: ``SSHHost`` quotes
every argument with ``shlex.join`` before it reaches the remote shell.
"""

from __future__ import annotations

import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from cloudrescue.errors import CloudRescueError, ExitStatus


class CommandFailedError(CloudRescueError):
    """A command on the host exited non-zero (raised by ``CommandResult.check``)."""

    def __init__(self, result: CommandResult) -> None:
        detail = (result.stderr or result.stdout).strip().splitlines()
        last = detail[-1] if detail else "no output"
        super().__init__(f"`{' '.join(result.argv)}` exited with status {result.exit_code}: {last}")
        self.result = result


class CommandTimeoutError(CloudRescueError):
    """A command on the host did not finish in time; it was killed there."""

    exit_status = ExitStatus.TIMEOUT

    def __init__(self, argv: Sequence[str], timeout: float, where: str) -> None:
        super().__init__(
            f"`{' '.join(argv)}` did not finish within {timeout:.0f} s on {where}: killed"
        )
        self.argv = tuple(argv)


@dataclass(frozen=True)
class CommandResult:
    """What a command printed and how it exited."""

    argv: tuple[str, ...]
    exit_code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def check(self) -> CommandResult:
        """Return self, or raise ``CommandFailedError`` when the command failed."""
        if self.exit_code != 0:
            raise CommandFailedError(self)
        return self


@dataclass(frozen=True)
class FileStat:
    """``lstat`` of a path on a host (symlinks are not followed)."""

    mode: int
    uid: int
    gid: int
    size: int
    mtime: float

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.mode)

    @property
    def is_file(self) -> bool:
        return stat.S_ISREG(self.mode)

    @property
    def is_symlink(self) -> bool:
        return stat.S_ISLNK(self.mode)

    @property
    def permissions(self) -> int:
        return stat.S_IMODE(self.mode)


class Host(Protocol):
    """A machine cloudrescue runs commands on and reads/writes files of.

    Paths are absolute paths *on that host*; none of these methods knows about the guest
    root: ``cloudrescue.guestfs`` resolves guest paths safely before calling them.
    """

    @property
    def description(self) -> str:
        """Short human name, e.g. ``root@203.0.113.7`` or ``localhost``."""
        ...

    def run(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes | None = None,
        check: bool = True,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
    ) -> CommandResult:
        """Run ``argv`` (no shell); raise ``CommandFailedError`` if ``check`` and it fails."""
        ...

    def lstat(self, path: str) -> FileStat | None:
        """Stat without following a final symlink; ``None`` when the path does not exist."""
        ...

    def readlink(self, path: str) -> str:
        """Target of the symlink at ``path``."""
        ...

    def listdir(self, path: str) -> list[str]:
        """Names in a directory (no ``.``/``..``)."""
        ...

    def read_file(self, path: str) -> bytes:
        """Whole content of a regular file."""
        ...

    def write_file(self, path: str, data: bytes, *, mode: int) -> None:
        """Create or truncate ``path`` with ``data`` and permissions ``mode`` (not atomic)."""
        ...

    def fsync(self, path: str) -> None:
        """Flush a file's data to its disk."""
        ...

    def rename(self, source: str, target: str) -> None:
        """POSIX rename: atomically replaces ``target`` (a symlink there is replaced)."""
        ...

    def mkdir(self, path: str, mode: int) -> None:
        """Create one directory."""
        ...

    def chmod(self, path: str, mode: int) -> None:
        """Set permission bits."""
        ...

    def chown(self, path: str, uid: int, gid: int) -> None:
        """Set owner and group by number."""
        ...

    def unlink(self, path: str) -> None:
        """Remove a file or symlink."""
        ...

    def symlink(self, target: str, path: str) -> None:
        """Create a symlink at ``path`` pointing to ``target``."""
        ...


@dataclass(frozen=True)
class TerminalRequest:
    """A PTY for a channel: the terminal type and size (``$TERM``, columns, lines)."""

    term: str
    columns: int
    lines: int


class RemoteHost(Host, Protocol):
    """A host cloudrescue logged in to (the rescue system): its host key, a connection."""

    @property
    def host_key_fingerprint(self) -> str:
        """SHA256 fingerprint of the host key the server presented (and we verified)."""
        ...

    def host_key_entry(self) -> str:
        """The server's host key as ``type base64`` (for a known_hosts line)."""
        ...

    def close(self) -> None:
        """Close the connection (idempotent)."""
        ...

    def open_channel(self, command: str, *, terminal: TerminalRequest | None = None) -> Any:
        """A channel running ``command`` (a shell string), with a PTY when ``terminal`` is
        given (``paramiko.Channel``: the caller reads, writes and closes it)."""
        ...
