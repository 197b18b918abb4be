"""What several fixes share: finding the guest's own tools (they run in ``fixes.sandbox``),
systemd unit state, the ``# cloudrescue:`` marker, reading the guest's YAML (no aliases), and
guest changes ``GuestFS`` has no verb for (masking a unit, deleting cache files, removing state
directories, truncating logs).

Every guest path still goes through ``GuestFS.resolve`` (symlinks cannot leave the guest
root); each change is returned as a ``Change`` and, when it can be undone, recorded in
``guest.changes`` so ``GuestFS.rollback`` undoes it.
"""

from __future__ import annotations

import posixpath
from typing import Any

import yaml

from cloudrescue.disks.commands import run_tool
from cloudrescue.disks.probe import parse_os_release
from cloudrescue.disks.session import MountedGuest
from cloudrescue.guestfs import Change, GuestFS, GuestPathError
from cloudrescue.remote.base import Host

MARKER = "# cloudrescue:"
SYSTEMD_DIRS = ("/etc/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system")
RHEL_IDS = ("rhel", "centos", "fedora", "rocky", "almalinux", "ol", "amzn")


def commented(line: str, reason: str) -> str:
    """``line`` disabled with the cloudrescue marker and why (newline kept as it was)."""
    body = line.rstrip("\n")
    return f"{MARKER} {reason}: {body}" + ("\n" if line.endswith("\n") else "")


def os_release(files: GuestFS) -> dict[str, str]:
    """The guest's os-release values (empty when it has none)."""
    for path in ("/etc/os-release", "/usr/lib/os-release"):
        text = files.read_text(path)
        if text is not None:
            return parse_os_release(text)
    return {}


def is_rhel_like(files: GuestFS) -> bool:
    """Whether the guest is RHEL-like (Rocky, Alma, CentOS, Fedora...) by os-release."""
    values = os_release(files)
    names = {values.get("ID", ""), *values.get("ID_LIKE", "").split()}
    return bool(names & set(RHEL_IDS)) or files.exists("/etc/redhat-release")


def chroot_ready(mount: MountedGuest) -> bool:
    """Whether ``/dev``, ``/proc`` and ``/sys`` are bound into the guest (mount with chroot)."""
    bound = {record.guest_path for record in mount.mounts if record.kind == "bind"}
    return {"/dev", "/proc", "/sys"} <= bound


def guest_program(files: GuestFS, *candidates: str) -> str | None:
    """The first of ``candidates`` that is a file in the guest (as a guest path)."""
    for candidate in candidates:
        info = files.stat(candidate)
        if info is not None and info.is_file:
            return candidate
    return None


class _GuestYamlLoader(yaml.SafeLoader):
    """``SafeLoader`` that refuses aliases: a guest's "billion laughs" document (nine anchors
    of nine aliases each) loads in a millisecond and takes gigabytes and minutes once walked
    (``repr``, a comparison); guest configurations (netplan, cloud-init) do not need them."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not accepted in a guest file", None
            )
        return super().compose_node(parent, index)


def load_guest_yaml(text: str) -> Any:
    """The YAML document ``text`` from the guest; ``yaml.YAMLError`` for what is not one, for
    aliases, and for nesting too deep to parse (the parser recurses: RecursionError)."""
    try:
        return yaml.load(text, Loader=_GuestYamlLoader)  # noqa: S506 - a SafeLoader
    except RecursionError:
        raise yaml.YAMLError("the document is nested too deeply") from None


def rescue_has(host: Host, program: str) -> bool:
    """Whether ``program`` is on the rescue system's PATH."""
    return run_tool(host, ["sh", "-c", 'command -v "$1"', "sh", program], check=False).ok


# -- systemd units -----------------------------------------------------------------------------


def _link(files: GuestFS, path: str) -> tuple[str, str] | None:
    """(host path, target) of a symlink at guest ``path`` (not followed), else ``None``."""
    where = files.resolve(path, follow_final=False)
    info = files.host.lstat(where.host)
    if info is None or not info.is_symlink:
        return None
    return where.host, files.host.readlink(where.host)


def unit_wanted_by(files: GuestFS, unit: str) -> list[str]:
    """Guest paths of the ``*.wants/<unit>`` links that enable ``unit`` at boot."""
    found = []
    for directory in files.listdir("/etc/systemd/system"):
        if directory.endswith((".wants", ".requires")):
            path = f"/etc/systemd/system/{directory}/{unit}"
            if _link(files, path) is not None:
                found.append(path)
    return found


def unit_masked(files: GuestFS, unit: str) -> bool:
    """Whether ``unit`` is masked (``/etc/systemd/system/<unit>`` -> ``/dev/null``)."""
    link = _link(files, f"/etc/systemd/system/{unit}")
    return link is not None and link[1] == "/dev/null"


def unit_enabled(files: GuestFS, unit: str) -> bool:
    """Whether ``unit`` starts at boot: wanted by a target and not masked."""
    return bool(unit_wanted_by(files, unit)) and not unit_masked(files, unit)


def disable_unit(files: GuestFS, unit: str) -> list[Change]:
    """Stop ``unit`` from starting at boot: remove its wants links and mask it."""
    changes: list[Change] = []
    for path in unit_wanted_by(files, unit):
        changes += remove_symlink(files, path)
    if not unit_masked(files, unit):
        changes += make_symlink(files, f"/etc/systemd/system/{unit}", "/dev/null")
    return changes


def make_symlink(files: GuestFS, path: str, target: str) -> list[Change]:
    """Create a symlink in the guest (a file already there is moved aside first)."""
    where = files.writable(path, follow_final=False)
    changes: list[Change] = []
    info = files.host.lstat(where.host)
    if info is not None:
        if info.is_dir:
            raise GuestPathError(f"{path} is a directory in the guest")
        if info.is_symlink:
            changes += remove_symlink(files, path)
        else:
            changes += files.remove(path)
    change = Change("create", where.guest, f"symlinked {where.guest} -> {target}")
    if not files.dry_run:
        files.host.symlink(target, where.host)
        files.host.fsync(posixpath.dirname(where.host))
    files.changes.append(change)
    return [*changes, change]


def remove_symlink(files: GuestFS, path: str) -> list[Change]:
    """Delete a symlink of the guest (recorded with its target: rollback recreates it)."""
    guest_path = files.writable(path, follow_final=False).guest
    link = _link(files, path)
    if link is None:
        return []
    host_path, target = link
    detail = f"removed the symlink {guest_path} (-> {target})"
    change = Change("remove", guest_path, detail, link_target=target)
    if not files.dry_run:
        files.host.unlink(host_path)
        files.host.fsync(posixpath.dirname(host_path))
    files.changes.append(change)
    return [change]


# -- deleting and truncating -------------------------------------------------------------------


def delete_file(files: GuestFS, path: str, *, why: str) -> list[Change]:
    """Really delete a regular guest file (caches, old journal files): no backup is kept."""
    where = files.writable(path, follow_final=False)
    info = files.host.lstat(where.host)
    if info is None:
        return []
    if not info.is_file:
        raise GuestPathError(f"{path} is not a regular file in the guest; not deleting it")
    change = Change("remove", where.guest, f"deleted {where.guest} ({why}, {info.size} bytes)")
    if not files.dry_run:
        files.host.unlink(where.host)
    return [change]


def move_aside(files: GuestFS, path: str) -> list[Change]:
    """Rename a guest file, directory or symlink to ``<name>.cloudrescue-<stamp>`` (undoable)."""
    where = files.writable(path, follow_final=False)
    info = files.host.lstat(where.host)
    if info is None:
        return []
    backup = files.backup_name(where.host)  # shortened when the name is already 255 bytes
    change = Change(
        "remove",
        where.guest,
        f"moved {where.guest} aside to {posixpath.basename(backup)}",
        backup=backup,
    )
    if not files.dry_run:
        files.host.rename(where.host, backup)
        files.host.fsync(posixpath.dirname(where.host))
    files.changes.append(change)
    return [change]
