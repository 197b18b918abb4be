"""Owners of guest files by name, resolved in the guest's own passwd and group files."""

from __future__ import annotations

from cloudrescue.guestfs import GuestFS


def resolve_owner(
    files: GuestFS, owner: str | None, group: str | None, current: tuple[int, int] | None
) -> tuple[int, int] | None:
    """``(uid, gid)`` for ``owner``/``group`` (either may be omitted), else ``None``.

    A user without a group gets the user's primary group; a group alone keeps the current
    owner (root for a new file).
    """
    if owner is None and group is None:
        return None
    uid, gid = current if current is not None else (0, 0)
    if owner is not None:
        user = files.user(owner)
        uid, gid = user.uid, user.gid
    if group is not None:
        gid = files.group_id(group)
    return uid, gid
