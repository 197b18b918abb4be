"""Guest file access that cannot escape the guest's mounted root.

Every guest path is resolved component by component inside the mounted root: symlinks are
read and followed *as the guest would see them* (absolute targets restart at the guest root,
``..`` stops at it), so a broken or hostile disk with ``.ssh -> /root/.ssh`` resolves to the
guest's ``/root/.ssh``, never the rescue system's. Writes are atomic (temporary file in the
same directory, fsync, rename), the previous content is backed up next to the file as
``<name>.cloudrescue-<UTC timestamp>``, owners are numbers from the **guest's** passwd/group.
Every change is recorded with what is needed to undo it (``rollback``).
"""

from __future__ import annotations

import difflib
import posixpath
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from cloudrescue.errors import CloudRescueError, InvalidInputError
from cloudrescue.remote.base import FileStat, Host

MAX_SYMLINKS = 40
PSEUDO_FILESYSTEMS = ("/proc", "/sys", "/dev", "/run")
NAME_MAX = 255  # bytes in one file name (ext4, xfs, btrfs)
MAX_READ = 64 * 1024 * 1024  # a configuration file larger than this is not one (sparse 100 GB)


class GuestPathError(CloudRescueError):
    """A guest path cannot be used (loop of symlinks, pseudo filesystem, wrong file type)."""


@dataclass(frozen=True)
class GuestPath:
    """A guest path and where it lives on the host running the rescue."""

    guest: str
    host: str


@dataclass(frozen=True)
class GuestUser:
    """An account from the guest's ``/etc/passwd``."""

    name: str
    uid: int
    gid: int
    home: str
    shell: str


ChangeKind = Literal["create", "modify", "chmod", "chown", "mkdir", "remove"]


@dataclass(frozen=True)
class Change:
    """One change made to the guest, with what undoing it needs."""

    kind: ChangeKind
    path: str
    detail: str
    backup: str | None = None
    previous_mode: int | None = None
    previous_owner: tuple[int, int] | None = None
    diff: str = ""
    link_target: str | None = None  # a removed symlink's target (undo recreates the link)


@dataclass
class Rollback:
    """What undoing the recorded changes did: restored, and what could not be."""

    restored: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def unified_diff(path: str, old: bytes | None, new: bytes | None) -> str:
    """Unified diff of two versions of a guest file ("" for binary content)."""
    texts: list[list[str]] = []
    for data in (old, new):
        if data is None:
            texts.append([])
            continue
        if b"\0" in data:
            return f"Binary content of {path} changed\n"
        texts.append(data.decode("utf-8", "replace").splitlines(keepends=True))
    lines = difflib.unified_diff(
        texts[0],
        texts[1],
        fromfile=f"a{path}" if old is not None else "/dev/null",
        tofile=f"b{path}" if new is not None else "/dev/null",
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def fitted_name(name: str, suffix: str) -> str:
    """``name + suffix``, ``name`` shortened (never ``suffix``) so the result fits NAME_MAX bytes.

    Backup and temporary names add a suffix to a guest file's name; the guest's name may
    already be 255 bytes long.
    """
    room = NAME_MAX - len(suffix.encode())
    while name and len(name.encode("utf-8", "surrogateescape")) > room:
        name = name[:-1]  # whole characters: the name stays what it was, only shorter
    return name + suffix


def _given_away(owner: tuple[int, int] | None) -> bool:
    """Whether ``owner`` hands a path to a non-root account of the guest."""
    return owner is not None and owner[0] != 0


def utc_stamp() -> str:
    """UTC timestamp used in backup names, e.g. ``20261123T101500Z``."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def parse_passwd(text: str) -> dict[str, GuestUser]:
    """Users of a passwd file by name (malformed lines skipped)."""
    users: dict[str, GuestUser] = {}
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) < 7 or line.startswith("#"):
            continue
        try:
            users[fields[0]] = GuestUser(
                fields[0], int(fields[2]), int(fields[3]), fields[5], fields[6]
            )
        except ValueError:
            continue
    return users


def parse_group(text: str) -> dict[str, int]:
    """Group ids of a group file by name."""
    groups: dict[str, int] = {}
    for line in text.splitlines():
        fields = line.split(":")
        if len(fields) >= 3 and fields[2].isdigit():
            groups[fields[0]] = int(fields[2])
    return groups


@dataclass
class GuestFS:
    """Root-anchored, backed-up, atomic file access to a guest mounted on ``root``."""

    host: Host
    root: str = "/mnt"
    stamp: Callable[[], str] = utc_stamp
    dry_run: bool = False
    changes: list[Change] = field(default_factory=list)
    _planned_dirs: set[str] = field(default_factory=set)
    _planned_removals: set[str] = field(default_factory=set)
    # Files written for a change not recorded yet (its temporary, its backup): a cut connection
    # leaves them, and rollback removes them (the file they were for is untouched).
    _unrecorded: set[str] = field(default_factory=set)

    # -- resolution -------------------------------------------------------------------------

    def _host_path(self, components: list[str]) -> str:
        return posixpath.join(self.root, *components) if components else self.root

    def resolve(self, path: str, *, follow_final: bool = True) -> GuestPath:
        """Where ``path`` (as the guest sees it) lives; symlinks never leave the guest root."""
        if not path.startswith("/"):
            raise InvalidInputError(f"guest paths must be absolute: {path!r}")
        pending = deque(path.split("/"))
        resolved: list[str] = []
        followed = 0
        while pending:
            name = pending.popleft()
            if name in ("", "."):
                continue
            if name == "..":
                if resolved:
                    resolved.pop()
                continue
            info = self._lstat(self._host_path([*resolved, name]))
            is_last = not any(part not in ("", ".") for part in pending)
            if info is not None and info.is_symlink and (follow_final or not is_last):
                followed += 1
                if followed > MAX_SYMLINKS:
                    raise GuestPathError(f"{path}: too many levels of symbolic links in the guest")
                target = self.host.readlink(self._host_path([*resolved, name]))
                if target.startswith("/"):
                    resolved = []
                pending.extendleft(reversed(target.split("/")))
                continue
            resolved.append(name)
        guest = "/" + "/".join(resolved)
        return GuestPath(guest=guest, host=self._host_path(resolved))

    def _lstat(self, host_path: str) -> FileStat | None:
        """``lstat``, seeing what a dry run has planned to move aside as already gone."""
        if host_path in self._planned_removals:
            return None
        return self.host.lstat(host_path)

    def writable(self, path: str, *, follow_final: bool = True) -> GuestPath:
        """``resolve``, refusing paths in the guest's pseudo filesystems (/proc, /sys...)."""
        target = self.resolve(path, follow_final=follow_final)
        for pseudo in PSEUDO_FILESYSTEMS:
            if target.guest == pseudo or target.guest.startswith(pseudo + "/"):
                raise GuestPathError(
                    f"{path} resolves to {target.guest}, inside the guest's {pseudo}: refused"
                )
        return target

    # -- reading ----------------------------------------------------------------------------

    def stat(self, path: str) -> FileStat | None:
        """``lstat`` of the resolved path (``None`` when absent)."""
        return self._lstat(self.resolve(path).host)

    def lstat(self, path: str) -> FileStat | None:
        """``lstat`` of the path with its final symlink not followed (``None`` when absent)."""
        return self._lstat(self.resolve(path, follow_final=False).host)

    def exists(self, path: str) -> bool:
        """Whether the path exists in the guest."""
        return self.stat(path) is not None

    def hard_links(self, path: str) -> int:
        """How many names the (resolved) guest file has (1 when it cannot tell)."""
        return self._hard_links(self.resolve(path).host)

    def read_bytes(self, path: str) -> bytes | None:
        """Content of a guest file, or ``None`` when it does not exist.

        A FIFO, device or socket is never opened (it could block or never end) and a file
        larger than ``MAX_READ`` (a 100 GB sparse "config") is not read: ``GuestPathError``.
        """
        target = self.resolve(path)
        info = self._lstat(target.host)
        if info is None:
            return None
        if not info.is_file:
            raise GuestPathError(f"{path} is not a regular file in the guest")
        if info.size > MAX_READ:
            raise GuestPathError(
                f"{path} is {info.size} bytes in the guest: too large to read as a "
                f"configuration file (limit {MAX_READ})"
            )
        return self.host.read_file(target.host)

    def read_text(self, path: str) -> str | None:
        """Text of a guest file (UTF-8, undecodable bytes replaced) or ``None``."""
        data = self.read_bytes(path)
        return None if data is None else data.decode("utf-8", "replace")

    def listdir(self, path: str) -> list[str]:
        """Names in a guest directory (empty when absent)."""
        target = self.resolve(path)
        info = self._lstat(target.host)
        if info is None or not info.is_dir:
            return []
        return sorted(self.host.listdir(target.host))

    # -- accounts ---------------------------------------------------------------------------

    def users(self) -> dict[str, GuestUser]:
        """The guest's accounts (from its own /etc/passwd)."""
        return parse_passwd(self.read_text("/etc/passwd") or "")

    def user(self, name: str) -> GuestUser:
        """One guest account; ``InvalidInputError`` when the guest has no such user."""
        found = self.users().get(name)
        if found is None:
            raise InvalidInputError(f"the guest has no user {name!r} in its /etc/passwd")
        return found

    def group_id(self, name: str) -> int:
        """A group id from the guest's /etc/group."""
        groups = parse_group(self.read_text("/etc/group") or "")
        if name not in groups:
            raise InvalidInputError(f"the guest has no group {name!r} in its /etc/group")
        return groups[name]

    # -- writing ----------------------------------------------------------------------------

    def _record(self, change: Change) -> Change:
        self.changes.append(change)
        return change

    def backup_name(self, host_path: str) -> str:
        """A free ``<name>.cloudrescue-<stamp>[-<n>]`` next to ``host_path`` (a host path),
        the name shortened when the guest's is too long to take the suffix."""
        directory, name = posixpath.split(host_path)
        suffix, counter = f".cloudrescue-{self.stamp()}", 0
        while True:
            candidate = posixpath.join(
                directory, fitted_name(name, suffix + (f"-{counter}" if counter else ""))
            )
            if self._lstat(candidate) is None:
                return candidate
            counter += 1

    def _keep_copy(self, host_path: str, data: bytes, info: FileStat) -> str:
        """Write ``data`` (the file's current content) to a fresh backup name; return it."""
        backup = self.backup_name(host_path)
        self.host.write_file(backup, data, mode=info.permissions)
        self.host.chown(backup, info.uid, info.gid)
        self.host.chmod(backup, info.permissions)  # chown cleared set-id bits
        self.host.fsync(backup)
        return backup

    def _sync_parent(self, host_path: str) -> None:
        self.host.fsync(posixpath.dirname(host_path))

    def _parent_exists(self, target: GuestPath) -> bool:
        parent = posixpath.dirname(target.host)
        info = self._lstat(parent)
        return (info is not None and info.is_dir) or parent in self._planned_dirs

    def write_file(
        self,
        path: str,
        data: bytes,
        *,
        mode: int | None = None,
        owner: tuple[int, int] | None = None,
        show_diff: bool = True,
    ) -> list[Change]:
        """Atomically make ``path`` hold ``data`` with ``mode``/``owner``; back up the old file.

        Returns the changes made, or in dry-run mode the changes that would be made (none
        when everything already matches). ``show_diff=False`` keeps secrets out of the diff.
        """
        given_away = _given_away(owner)
        replaced: list[Change] = []
        if given_away and self._is_symlink(path):
            replaced = self.remove(path)  # the link is kept as a backup, never followed
        target = self.writable(path)
        info = self._lstat(target.host)
        if info is not None and not info.is_file:
            raise GuestPathError(f"{path} exists in the guest and is not a regular file")
        if not self._parent_exists(target):
            raise GuestPathError(f"{posixpath.dirname(target.guest)} does not exist in the guest")
        old = self.read_bytes(target.guest) if info is not None else None
        want_mode = mode if mode is not None else (info.permissions if info else 0o644)
        want_owner = owner if owner is not None else ((info.uid, info.gid) if info else (0, 0))
        if old == data and not self._shared(target, info, want_mode, want_owner, given_away):
            return replaced + self._fix_metadata(target, info, want_mode, want_owner)
        return replaced + self._replace(target, info, old, data, want_mode, want_owner, show_diff)

    def _shared(
        self,
        target: GuestPath,
        info: FileStat | None,
        mode: int,
        owner: tuple[int, int],
        given_away: bool,
    ) -> bool:
        """Whether changing ``target``'s owner or mode in place would also change another name
        of the same file (a hard link, e.g. ``/etc/shadow``): then it is rewritten instead."""
        if info is None or not info.is_file:
            return False
        if not given_away and (info.permissions, (info.uid, info.gid)) == (mode, owner):
            return False
        return self._hard_links(target.host) > 1

    def _replace(
        self,
        target: GuestPath,
        info: FileStat | None,
        old: bytes | None,
        data: bytes,
        want_mode: int,
        want_owner: tuple[int, int],
        show_diff: bool,
    ) -> list[Change]:
        """Write a new file in place of ``target`` (temporary file, fsync, rename)."""
        diff = (
            unified_diff(target.guest, old, data)
            if show_diff
            else (f"content of {target.guest} changed (not shown)\n")
        )
        kind: ChangeKind = "modify" if info is not None else "create"
        detail = f"{'rewrote' if info else 'created'} {target.guest} (mode {want_mode:04o})"
        if self.dry_run:
            return [self._record(Change(kind, target.guest, detail, diff=diff))]
        backup = None
        if info is not None and old is not None:
            backup = self._keep_copy(target.host, old, info)
            self._unrecorded.add(backup)
            detail += f", backup {posixpath.basename(backup)}"
        temporary = posixpath.join(
            posixpath.dirname(target.host),
            fitted_name(
                f".{posixpath.basename(target.host)}", f".cloudrescue-tmp-{secrets.token_hex(4)}"
            ),
        )
        self._unrecorded.add(temporary)
        self.host.write_file(temporary, data, mode=want_mode)
        self.host.chown(temporary, *want_owner)
        self.host.chmod(temporary, want_mode)
        self.host.fsync(temporary)
        self.host.rename(temporary, target.host)
        self._unrecorded.difference_update({temporary, backup})
        self._sync_parent(target.host)
        return [
            self._record(
                Change(
                    kind,
                    target.guest,
                    detail,
                    backup=backup,
                    previous_mode=info.permissions if info else None,
                    previous_owner=(info.uid, info.gid) if info else None,
                    diff=diff,
                )
            )
        ]

    def _is_symlink(self, path: str) -> bool:
        info = self._lstat(self.resolve(path, follow_final=False).host)
        return info is not None and info.is_symlink

    def _hard_links(self, host_path: str) -> int:
        result = self.host.run(["stat", "-c", "%h", "--", host_path], check=False)
        return int(result.stdout.strip()) if result.ok and result.stdout.strip().isdigit() else 1

    def _refuse_link_given_away(self, path: str, owner: tuple[int, int]) -> None:
        """A final symlink is never followed to give its target to a non-root owner: the
        guest's user could point it at any file of the guest (``/etc/shadow``, ``/``)."""
        if _given_away(owner) and self._is_symlink(path):
            link = self.resolve(path, follow_final=False)
            raise GuestPathError(
                f"{link.guest} is a symlink (to {self.host.readlink(link.host)}): refusing to "
                f"give what it points to uid {owner[0]}"
            )

    def _fix_metadata(
        self, target: GuestPath, info: FileStat | None, mode: int, owner: tuple[int, int]
    ) -> list[Change]:
        if info is None:  # only in dry-run: the file or directory is still to be created
            return []
        made: list[Change] = []
        if (info.uid, info.gid) != owner:
            if not self.dry_run:
                self.host.chown(target.host, *owner)
            made.append(
                self._record(
                    Change(
                        "chown",
                        target.guest,
                        f"owner of {target.guest} {info.uid}:{info.gid} -> {owner[0]}:{owner[1]}",
                        previous_owner=(info.uid, info.gid),
                    )
                )
            )
        if (info.permissions != mode or made) and not self.dry_run:
            # chown may clear set-id bits: always re-apply the mode after it.
            self.host.chmod(target.host, mode)
        if info.permissions != mode:
            made.append(
                self._record(
                    Change(
                        "chmod",
                        target.guest,
                        f"mode of {target.guest} {info.permissions:04o} -> {mode:04o}",
                        previous_mode=info.permissions,
                    )
                )
            )
        return made

    def set_metadata(self, path: str, *, mode: int, owner: tuple[int, int]) -> list[Change]:
        """Make an existing file or directory have ``mode`` and ``owner``."""
        self._refuse_link_given_away(path, owner)
        target = self.writable(path)
        info = self._lstat(target.host)
        if info is None and target.host not in self._planned_dirs:
            raise GuestPathError(f"{path} does not exist in the guest")
        if self._shared(target, info, mode, owner, _given_away(owner)):
            if _given_away(owner):  # its content is another name's (/etc/shadow's) too
                raise GuestPathError(
                    f"{target.guest} has other hard links in the guest: refusing to give it to "
                    f"uid {owner[0]}"
                )
            assert info is not None
            data = self.read_bytes(target.guest) or b""
            return self._replace(target, info, data, data, mode, owner, show_diff=True)
        return self._fix_metadata(target, info, mode, owner)

    def ensure_dir(self, path: str, *, mode: int, owner: tuple[int, int]) -> list[Change]:
        """Make ``path`` a directory with ``mode``/``owner``, creating it if needed.

        Missing parents are not created: a guest without the parent is not what we think.
        """
        self._refuse_link_given_away(path, owner)
        target = self.writable(path)
        info = self._lstat(target.host)
        if info is not None and not info.is_dir:
            raise GuestPathError(f"{path} exists in the guest and is not a directory")
        if info is not None or target.host in self._planned_dirs:
            return self._fix_metadata(target, info, mode, owner)
        if not self._parent_exists(target):
            raise GuestPathError(f"{posixpath.dirname(target.guest)} does not exist in the guest")
        change = Change("mkdir", target.guest, f"created directory {target.guest} ({mode:04o})")
        if self.dry_run:
            self._planned_dirs.add(target.host)
            return [self._record(change)]
        self.host.mkdir(target.host, mode)
        self.host.chown(target.host, *owner)
        self.host.chmod(target.host, mode)
        self._sync_parent(target.host)
        return [self._record(change)]

    def remove(self, path: str) -> list[Change]:
        """Move a guest file or symlink aside (to its backup name) instead of deleting it.

        A symlink is moved itself, never what it points to.
        """
        target = self.writable(path, follow_final=False)
        info = self._lstat(target.host)
        if info is None:
            return []
        if info.is_dir:
            raise GuestPathError(f"{path} is a directory; refusing to remove it")
        backup = self.backup_name(target.host)
        change = Change(
            "remove",
            target.guest,
            f"moved {target.guest} aside to {posixpath.basename(backup)}",
            backup=backup,
        )
        if self.dry_run:
            self._planned_removals.add(target.host)
        else:
            self.host.rename(target.host, backup)
            self._sync_parent(target.host)
        return [self._record(change)]

    def before_rewrite(self, path: str, detail: str) -> Change:
        """Record that a guest tool is about to rewrite ``path`` in place (``grub-mkconfig``).

        The current file is copied to its backup name first, so ``rollback`` puts it back (or
        removes the file when there was none). In a dry run nothing is copied.
        """
        target = self.writable(path)
        info = self._lstat(target.host)
        if info is not None and not info.is_file:
            raise GuestPathError(f"{path} exists in the guest and is not a regular file")
        if info is None:
            return self._record(Change("create", target.guest, detail))
        if self.dry_run:
            return self._record(Change("modify", target.guest, detail))
        backup = self._keep_copy(target.host, self.read_bytes(target.guest) or b"", info)
        self._sync_parent(target.host)
        return self._record(
            Change("modify", target.guest, f"{detail}, backup {posixpath.basename(backup)}", backup)
        )

    # -- undo -------------------------------------------------------------------------------

    def rollback(self) -> Rollback:
        """Undo every recorded change, newest first, and say what was restored.

        A change that cannot be undone (its backup gone, the SSH connection lost) is reported
        in ``failed`` and the others are still undone; a file that was to be created and
        never was is simply not there.
        """
        done = Rollback()
        if self.dry_run:
            self.changes.clear()
            return done
        for leftover in sorted(self._unrecorded):
            try:
                if self.host.lstat(leftover) is not None:
                    self.host.unlink(leftover)
            except (OSError, CloudRescueError) as error:
                done.failed.append(f"{leftover[len(self.root) :]} (left by a cut write): {error}")
                continue
            self._unrecorded.discard(leftover)
        while self.changes:
            change = self.changes.pop()
            try:
                self._undo(change)
            except (OSError, CloudRescueError) as error:
                done.failed.append(f"{change.path} ({change.kind}): {error}")
                continue
            done.restored.append(f"restored {change.path} ({change.kind} undone)")
        return done

    def _undo(self, change: Change) -> None:
        host_path = self._host_path([p for p in change.path.split("/") if p])
        if change.kind in ("modify", "remove") and change.backup:
            self.host.rename(change.backup, host_path)
        elif change.kind == "remove" and change.link_target is not None:
            self.host.symlink(change.link_target, host_path)
        elif change.kind == "create":
            if self.host.lstat(host_path) is not None:
                self.host.unlink(host_path)
        elif change.kind == "mkdir":
            self.host.run(["rmdir", "--", host_path], check=False)
        if change.previous_owner is not None and change.kind == "chown":
            self.host.chown(host_path, *change.previous_owner)
        if change.previous_mode is not None and change.kind == "chmod":
            self.host.chmod(host_path, change.previous_mode)
        self._sync_parent(host_path)

    def selinux_mode(self) -> str | None:
        """``enforcing``/``permissive``/``disabled`` from the guest's /etc/selinux/config."""
        text = self.read_text("/etc/selinux/config")
        if text is None:
            return None
        for line in text.splitlines():
            key, _, value = line.strip().partition("=")
            if key == "SELINUX":
                return value.strip().strip("\"'").lower() or None
        return None

    def request_selinux_relabel(self) -> list[Change]:
        """On SELinux guests, set ``/.autorelabel`` so files we wrote get their contexts."""
        if self.selinux_mode() not in ("enforcing", "permissive"):
            return []
        if self.exists("/.autorelabel"):
            return []
        return self.write_file("/.autorelabel", b"", mode=0o644, owner=(0, 0))
