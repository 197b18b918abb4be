"""``Host`` implementation for this machine (subprocess + os)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from cloudrescue.remote.base import CommandResult, CommandTimeoutError, FileStat


class LocalHost:
    """Runs commands and touches files on the local machine."""

    @property
    def description(self) -> str:
        return "localhost"

    def run(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes | None = None,
        check: bool = True,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
    ) -> CommandResult:
        merged_env = {**os.environ, **env} if env is not None else None
        try:
            completed = subprocess.run(
                list(argv),
                input=stdin if stdin is not None else b"",
                capture_output=True,
                timeout=timeout,
                env=merged_env,
                check=False,
            )
        except subprocess.TimeoutExpired as error:  # subprocess killed it
            raise CommandTimeoutError(argv, timeout or 0, self.description) from error
        result = CommandResult(
            argv=tuple(argv),
            exit_code=completed.returncode,
            stdout=completed.stdout.decode("utf-8", "replace"),
            stderr=completed.stderr.decode("utf-8", "replace"),
        )
        return result.check() if check else result

    def lstat(self, path: str) -> FileStat | None:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return None
        return FileStat(st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime)

    def readlink(self, path: str) -> str:
        return os.readlink(path)

    def listdir(self, path: str) -> list[str]:
        return os.listdir(path)

    def read_file(self, path: str) -> bytes:
        return Path(path).read_bytes()

    def write_file(self, path: str, data: bytes, *, mode: int) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(fd, mode)
            handle.write(data)

    def fsync(self, path: str) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def rename(self, source: str, target: str) -> None:
        os.rename(source, target)

    def mkdir(self, path: str, mode: int) -> None:
        os.mkdir(path, mode)
        os.chmod(path, mode)

    def chmod(self, path: str, mode: int) -> None:
        os.chmod(path, mode)

    def chown(self, path: str, uid: int, gid: int) -> None:
        os.chown(path, uid, gid, follow_symlinks=False)

    def unlink(self, path: str) -> None:
        os.unlink(path)

    def symlink(self, target: str, path: str) -> None:
        os.symlink(target, path)
