"""Generic actions on guest file metadata: chmod and chown (names from the guest's files)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from cloudrescue.guestfs import GuestFS
from cloudrescue.playbook.actions.base import (
    Action,
    ActionParams,
    Outcome,
    StepFailedError,
    file_outcome,
)
from cloudrescue.playbook.actions.owners import resolve_owner
from cloudrescue.playbook.fields import GROUP, MODE, PATH, USER
from cloudrescue.playbook.target import Target
from cloudrescue.remote.base import FileStat


def _existing(files: GuestFS, path: str) -> FileStat | None:
    """The file's stat; ``None`` in check mode for a file an earlier step would create."""
    info = files.stat(path)
    if info is not None:
        return info
    created = files.resolve(path).guest
    if files.dry_run and any(c.kind == "create" and c.path == created for c in files.changes):
        return None
    raise StepFailedError(f"{path} does not exist in the guest")


PLANNED = Outcome(changed=True, note="on the file an earlier step would create")


class ChmodParams(ActionParams):
    path: Annotated[str, PATH] = Field(description="file or directory")
    mode: Annotated[int, MODE] = Field(description="permissions, e.g. '0600'")


def _chmod(target: Target, params: ChmodParams, step: str) -> Outcome:
    files = target.phase.need_guest().files
    info = _existing(files, params.path)
    if info is None:
        return PLANNED
    return file_outcome(
        files.set_metadata(params.path, mode=params.mode, owner=(info.uid, info.gid))
    )


class ChownParams(ActionParams):
    path: Annotated[str, PATH] = Field(description="file or directory")
    owner: Annotated[str, USER] = Field(description="owning guest user")
    group: Annotated[str | None, GROUP] = Field(
        None, description="owning guest group (default: the owner's primary group)"
    )


def _chown(target: Target, params: ChownParams, step: str) -> Outcome:
    files = target.phase.need_guest().files
    info = _existing(files, params.path)
    if info is None:
        return PLANNED
    owner = resolve_owner(files, params.owner, params.group, (info.uid, info.gid))
    return file_outcome(
        files.set_metadata(
            params.path, mode=info.permissions, owner=owner or (info.uid, info.gid)
        )
    )


ACTIONS = (
    Action(
        "chmod",
        "Set the permissions of a guest file or directory.",
        ChmodParams,
        "the mode of `path`",
        "guest",
        _chmod,
    ),
    Action(
        "chown",
        "Set the owner and group of a guest file or directory (guest user and group names).",
        ChownParams,
        "the owner of `path`",
        "guest",
        _chown,
    ),
)
