"""Generic actions on guest files: ensure_line, comment_lines, write_file, remove_file, copy,
ensure_dir. Every write goes through ``GuestFS`` (atomic, backed up, undone on failure)."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field, model_validator

from cloudrescue.fixes.common import commented
from cloudrescue.guestfs import GuestFS
from cloudrescue.playbook.actions.base import (
    Action,
    ActionParams,
    Outcome,
    StepFailedError,
    file_outcome,
)
from cloudrescue.playbook.actions.owners import resolve_owner
from cloudrescue.playbook.fields import FLAG, GROUP, LINE, MODE, PATH, REGEX, TEXT, USER
from cloudrescue.playbook.target import Target

DEFAULT_FILE_MODE = 0o644
DEFAULT_DIR_MODE = 0o755


def read_lines(files: GuestFS, path: str) -> list[str] | None:
    """Lines of a guest text file (bytes that are not UTF-8 survive a rewrite)."""
    data = files.read_bytes(path)
    return None if data is None else data.decode("utf-8", "surrogateescape").splitlines()


def write_lines(files: GuestFS, path: str, lines: list[str], *, create: bool) -> Outcome:
    """Rewrite ``path`` with ``lines`` (mode and owner kept, or 0644 root for a new file)."""
    data = ("\n".join(lines) + "\n").encode("utf-8", "surrogateescape")
    mode = DEFAULT_FILE_MODE if create else None
    return file_outcome(files.write_file(path, data, mode=mode))


class EnsureLineParams(ActionParams):
    path: Annotated[str, PATH] = Field(description="the file to edit")
    line: Annotated[str, LINE] = Field(description="the line the file must contain")
    match: Annotated[str | None, REGEX] = Field(
        None,
        description="regex of the line to replace by `line` (the first match); without a "
        "match `line` is appended",
    )
    create: Annotated[bool, FLAG] = Field(
        False, description="create the file (0644, root) when it is missing"
    )

    @model_validator(mode="after")
    def _idempotent(self) -> EnsureLineParams:
        if self.match is not None and not re.search(self.match, self.line):
            raise ValueError(
                f"line {self.line!r} does not match {self.match!r}: a second run would "
                "append it again"
            )
        return self


def _ensure_line(target: Target, params: EnsureLineParams, step: str) -> Outcome:
    files = target.phase.need_guest().files
    lines = read_lines(files, params.path)
    if lines is None and not params.create:
        raise StepFailedError(f"{params.path} does not exist in the guest (create: true makes it)")
    current = lines or []
    wanted = list(current)
    found = next(
        (i for i, text in enumerate(current) if params.match and re.search(params.match, text)),
        None,
    )
    if found is not None:
        wanted[found] = params.line
    elif params.line not in current:
        wanted.append(params.line)
    if wanted == current and lines is not None:
        return Outcome(changed=False)
    return write_lines(files, params.path, wanted, create=lines is None)


class CommentLinesParams(ActionParams):
    path: Annotated[str, PATH] = Field(description="the file to edit")
    regex: Annotated[str, REGEX] = Field(description="lines matching it are commented out")
    reason: Annotated[str | None, LINE] = Field(
        None, description="why, written after the `# cloudrescue:` marker (default: step name)"
    )


def _comment_lines(target: Target, params: CommentLinesParams, step: str) -> Outcome:
    files = target.phase.need_guest().files
    lines = read_lines(files, params.path)
    if lines is None:
        return Outcome(changed=False, note=f"{params.path} does not exist")
    pattern = re.compile(params.regex)
    wanted = [
        commented(text, params.reason or step)
        if not text.lstrip().startswith("#") and pattern.search(text)
        else text
        for text in lines
    ]
    if wanted == lines:
        return Outcome(changed=False)
    return write_lines(files, params.path, wanted, create=False)


class WriteFileParams(ActionParams):
    path: Annotated[str, PATH] = Field(description="the file to write")
    content: Annotated[str, TEXT] = Field(description="its whole content")
    mode: Annotated[int | None, MODE] = Field(
        None, description="permissions (default: kept, 0644 for a new file)"
    )
    owner: Annotated[str | None, USER] = Field(
        None, description="owning guest user (default: kept, root for a new file)"
    )
    group: Annotated[str | None, GROUP] = Field(
        None, description="owning guest group (default: the owner's primary group)"
    )
    show_diff: Annotated[bool, FLAG] = Field(
        True, description="false keeps the content out of diffs (shadow-like files)"
    )


def _write_file(target: Target, params: WriteFileParams, step: str) -> Outcome:
    files = target.phase.need_guest().files
    info = files.stat(params.path)
    current = (info.uid, info.gid) if info is not None else None
    changes = files.write_file(
        params.path,
        params.content.encode("utf-8", "surrogateescape"),
        mode=params.mode if params.mode is not None else (None if info else DEFAULT_FILE_MODE),
        owner=resolve_owner(files, params.owner, params.group, current),
        show_diff=params.show_diff,
    )
    return file_outcome(changes)


class RemoveFileParams(ActionParams):
    path: Annotated[str, PATH] = Field(description="the file to move aside")


def _remove_file(target: Target, params: RemoveFileParams, step: str) -> Outcome:
    return file_outcome(target.phase.need_guest().files.remove(params.path))


class CopyParams(ActionParams):
    source: Annotated[str, PATH] = Field(description="the guest file to copy")
    dest: Annotated[str, PATH] = Field(description="where to copy it in the guest")
    mode: Annotated[int | None, MODE] = Field(None, description="permissions (default: source's)")
    owner: Annotated[str | None, USER] = Field(None, description="owner (default: source's)")
    group: Annotated[str | None, GROUP] = Field(None, description="group (default: source's)")


def _copy(target: Target, params: CopyParams, step: str) -> Outcome:
    files = target.phase.need_guest().files
    info = files.stat(params.source)
    data = files.read_bytes(params.source)
    if info is None or data is None:
        raise StepFailedError(f"{params.source} does not exist in the guest")
    owner = resolve_owner(files, params.owner, params.group, (info.uid, info.gid))
    changes = files.write_file(
        params.dest,
        data,
        mode=params.mode if params.mode is not None else info.permissions,
        owner=owner or (info.uid, info.gid),
    )
    return file_outcome(changes)


class EnsureDirParams(ActionParams):
    path: Annotated[str, PATH] = Field(description="the directory (its parent must exist)")
    mode: Annotated[int, MODE] = Field(DEFAULT_DIR_MODE, description="permissions")
    owner: Annotated[str | None, USER] = Field(None, description="owner (default: root)")
    group: Annotated[str | None, GROUP] = Field(
        None, description="group (default: the owner's primary group)"
    )


def _ensure_dir(target: Target, params: EnsureDirParams, step: str) -> Outcome:
    files = target.phase.need_guest().files
    owner = resolve_owner(files, params.owner, params.group, None) or (0, 0)
    return file_outcome(files.ensure_dir(params.path, mode=params.mode, owner=owner))


ACTIONS = (
    Action(
        "ensure_line",
        "Make a file contain a line, replacing the first line matching `match`.",
        EnsureLineParams,
        "`path`, rewritten atomically (backup kept)",
        "guest",
        _ensure_line,
    ),
    Action(
        "comment_lines",
        "Comment out the lines of a file that match a regex (`# cloudrescue: reason: ...`).",
        CommentLinesParams,
        "`path`, rewritten atomically (backup kept)",
        "guest",
        _comment_lines,
    ),
    Action(
        "write_file",
        "Make a file hold exactly `content`, with a mode and owner.",
        WriteFileParams,
        "`path` (content, mode, owner; backup kept)",
        "guest",
        _write_file,
    ),
    Action(
        "remove_file",
        "Move a file aside to its backup name (`<name>.cloudrescue-<time>`).",
        RemoveFileParams,
        "`path` (renamed, not deleted)",
        "guest",
        _remove_file,
    ),
    Action(
        "copy",
        "Copy a file inside the guest.",
        CopyParams,
        "`dest` (backup kept)",
        "guest",
        _copy,
    ),
    Action(
        "ensure_dir",
        "Make a directory exist with a mode and owner.",
        EnsureDirParams,
        "`path` (created, or its mode and owner set)",
        "guest",
        _ensure_dir,
    ),
)
