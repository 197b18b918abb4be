"""A ``Host`` that answers commands from a script, for what the test kernel cannot do."""

from __future__ import annotations

import stat
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cloudrescue.remote.base import CommandResult, FileStat


@dataclass
class ScriptedHost:
    """Answers commands through ``answer``; device nodes exist once ``nodes`` lists them."""

    answer: Callable[[list[str]], tuple[int, str]]
    nodes: set[str] = field(default_factory=set)
    commands: list[list[str]] = field(default_factory=list)

    @property
    def description(self) -> str:
        return "rescue"

    def run(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes | None = None,
        check: bool = True,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
    ) -> CommandResult:
        self.commands.append(list(argv))
        if argv[0] == "mknod":
            self.nodes.add(argv[1])
        code, out = self.answer(list(argv))
        result = CommandResult(tuple(argv), code, out, "" if code == 0 else "failed")
        return result.check() if check else result

    def lstat(self, path: str) -> FileStat | None:
        return FileStat(stat.S_IFBLK | 0o600, 0, 0, 0, 0.0) if path in self.nodes else None

    def unlink(self, path: str) -> None:
        self.nodes.discard(path)

    # LVM and teardown only run commands and handle device nodes: no file access.
    def _no_files(self, *args: object, **kwargs: object) -> Any:
        raise NotImplementedError("the scripted host has no files")

    readlink = listdir = read_file = write_file = fsync = _no_files
    rename = mkdir = chmod = chown = symlink = _no_files
