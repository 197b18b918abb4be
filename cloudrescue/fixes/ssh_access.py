"""Give a user SSH access back: authorized_keys content, and the modes sshd insists on.

sshd (``StrictModes yes``) ignores a key file when the home directory, ``~/.ssh`` or the
file itself is writable by others or owned by someone else, so the fix covers both the keys
and the ownership/modes along the path.
"""

from __future__ import annotations

import base64
import binascii
import posixpath
import re
from collections.abc import Iterable

import yaml

from cloudrescue.errors import FixFailedError, InvalidInputError
from cloudrescue.fixes.common import load_guest_yaml
from cloudrescue.fixes.sshd_settings import Setting, SshdConfig
from cloudrescue.guest import Guest
from cloudrescue.guestfs import Change, GuestFS, GuestUser
from cloudrescue.keys import KEY_TYPES, PublicKey

# Cloud images' default users, most specific first; root is the last resort.
DEFAULT_USERS = (
    "debian",
    "ubuntu",
    "cloud-user",
    "rocky",
    "almalinux",
    "centos",
    "fedora",
    "ec2-user",
    "admin",
    "opensuse",
    "arch",
    "freebsd",
)
DEFAULT_AUTHORIZED_KEYS_FILE = ".ssh/authorized_keys"
# sshd's default AuthorizedKeysFile (servconf.c fill_default_server_options)
DEFAULT_AUTHORIZED_KEYS_FILES = (DEFAULT_AUTHORIZED_KEYS_FILE, ".ssh/authorized_keys2")


def cloud_init_default_user(files: GuestFS) -> str | None:
    """``system_info.default_user.name`` from the guest's cloud-init config, if any."""
    text = files.read_text("/etc/cloud/cloud.cfg")
    if not text:
        return None
    try:
        config = load_guest_yaml(text)
    except yaml.YAMLError:
        return None
    if not isinstance(config, dict):
        return None
    user = (config.get("system_info") or {}).get("default_user") or {}
    name = user.get("name") if isinstance(user, dict) else None
    return name if isinstance(name, str) and name else None


def default_user(files: GuestFS) -> GuestUser:
    """The account a cloud image logs in with: cloud-init's default user, a known name, root."""
    users = files.users()
    preferred = cloud_init_default_user(files)
    for name in (preferred, *DEFAULT_USERS):
        if name and name in users and files.exists(users[name].home):
            return users[name]
    if "root" not in users:
        raise InvalidInputError("the guest's /etc/passwd has neither a cloud user nor root")
    return users["root"]


def _tilde(path: str, files: GuestFS) -> str:
    """sshd's ``tilde_expand_filename`` at config parse time (sshd runs as root)."""
    if not path.startswith("~"):
        return path
    name, slash, rest = path[1:].partition("/")
    users = files.users()
    account = users.get(name) if name else next((u for u in users.values() if u.uid == 0), None)
    if account is None:
        return path
    return f"{account.home.rstrip('/')}/{rest}" if slash else account.home


def expand_authorized_keys(pattern: str, user: GuestUser) -> str:
    """sshd's ``expand_authorized_keys``: ``%h``, ``%u``, ``%U``, ``%%``; relative paths are
    under the home. Raises ``ValueError`` for another ``%`` token (sshd gives up there)."""
    tokens = {"h": user.home, "u": user.name, "U": str(user.uid), "%": "%"}
    parts = re.split(r"(%.?)", pattern, flags=re.DOTALL)
    expanded = ""
    for part in parts:
        if part.startswith("%"):
            if part[1:] not in tokens:
                raise ValueError(f"unknown token {part!r} in AuthorizedKeysFile {pattern!r}")
            expanded += tokens[part[1:]]
        else:
            expanded += part
    return expanded if expanded.startswith("/") else f"{user.home.rstrip('/')}/{expanded}"


def authorized_keys_setting(
    files: GuestFS, user: GuestUser, config: SshdConfig | None = None
) -> Setting:
    """The guest sshd's ``AuthorizedKeysFile`` for a login of ``user`` (Match blocks too)."""
    config = config if config is not None else SshdConfig.read(files)
    return config.setting("AuthorizedKeysFile", user=user.name)


def authorized_keys_paths(
    files: GuestFS, user: GuestUser, config: SshdConfig | None = None
) -> list[str]:
    """Every guest path the guest's sshd reads ``user``'s keys from, in its order.

    ``AuthorizedKeysFile`` as sshd takes it for that user (``Include``s, ``Match`` blocks),
    else sshd's default; ``none`` reads no file (empty list); ``~`` is root's home as sshd
    expands it; a path with a token sshd does not know ends the list (sshd stops there).
    """
    setting = authorized_keys_setting(files, user, config)
    patterns = list(setting.args) or list(DEFAULT_AUTHORIZED_KEYS_FILES)
    paths: list[str] = []
    for pattern in patterns:
        if pattern.lower() == "none":
            continue
        try:
            paths.append(expand_authorized_keys(_tilde(pattern, files), user))
        except ValueError:
            break
    return paths


def authorized_keys_path(files: GuestFS, user: GuestUser) -> str:
    """The first path sshd reads ``user``'s keys from: where keys are written.

    Raises ``FixFailedError`` when the guest's sshd reads no key file for the user.
    """
    config = SshdConfig.read(files)
    paths = authorized_keys_paths(files, user, config)
    if not paths:
        source = authorized_keys_setting(files, user, config).source
        where = f" (AuthorizedKeysFile {' '.join(source.args)}, {source.where})" if source else ""
        raise FixFailedError(
            f"the guest's sshd reads no authorized_keys file for {user.name}{where}"
        )
    return paths[0]


def _key_blob(line: str) -> bytes | None:
    """Key material of an authorized_keys line (options prefix allowed), if recognisable."""
    fields = line.split()
    for position, token in enumerate(fields[:-1]):
        if token in KEY_TYPES:
            try:
                return base64.b64decode(fields[position + 1], validate=True)
            except (binascii.Error, ValueError):
                return None
    return None


def authorized_keys_content(
    current: str | None, keys: Iterable[PublicKey], *, replace: bool
) -> str:
    """New authorized_keys text: ``keys`` appended once each, or only ``keys`` if ``replace``."""
    lines = [] if replace or current is None else current.splitlines()
    present = {blob for line in lines if (blob := _key_blob(line)) is not None}
    for key in keys:
        if key.blob not in present:
            lines.append(key.line)
            present.add(key.blob)
    return "\n".join(lines) + "\n" if lines else ""


def _sane_dir_mode(mode: int) -> int:
    return mode & ~0o022


def _unlink_escaping_symlink(files: GuestFS, path: str, home_prefix: str) -> list[Change]:
    """Move aside a symlinked ``~/.ssh`` that leads out of the home (e.g. to /root/.ssh).

    Following it would hand another account's keys directory to the user; the link itself
    is kept as a backup and a real directory takes its place.
    """
    link = files.resolve(path, follow_final=False)
    info = files.host.lstat(link.host)
    if info is None or not info.is_symlink:
        return []
    if files.resolve(path).guest.startswith(home_prefix):
        return []
    return files.remove(path)


def _restore_in_home(
    files: GuestFS, user: GuestUser, key_file: str, keys: list[PublicKey], *, replace: bool
) -> list[Change]:
    """A key file in the home: user-owned 0600, its directory 0700, the home sane."""
    if user.home in ("", "/"):
        raise InvalidInputError(f"user {user.name} has no usable home directory ({user.home!r})")
    owner = (user.uid, user.gid)
    changes: list[Change] = []
    home = files.stat(user.home)
    if home is None or not home.is_dir:
        raise InvalidInputError(f"the home directory of {user.name}, {user.home}, is missing")
    home_owner = owner if user.uid != 0 else (0, 0)
    changes += files.set_metadata(
        user.home, mode=_sane_dir_mode(home.permissions), owner=home_owner
    )
    key_dir = key_file.rsplit("/", 1)[0] or "/"
    home_prefix = user.home.rstrip("/") + "/"
    if key_dir.startswith(home_prefix):
        changes += _unlink_escaping_symlink(files, key_dir, home_prefix)
        changes += files.ensure_dir(key_dir, mode=0o700, owner=owner)
    current = _users_own_keys(files, user, key_file, home_prefix)
    content = authorized_keys_content(current, keys, replace=replace)
    return changes + files.write_file(key_file, content.encode(), mode=0o600, owner=owner)


def _users_own_keys(files: GuestFS, user: GuestUser, key_file: str, home_prefix: str) -> str | None:
    """The keys already in ``key_file`` that may go into the user's new file (``None``: none).

    The new file is the user's: what it carries over must be what the user could read. A
    symlink planted there is replaced, not followed (``GuestFS.write_file``), and what it
    points to is read only when that is the user's own file in the home; a file with other
    hard links (``/etc/shadow``'s inode) is read only when it is the user's. Otherwise the
    keys start afresh.
    """
    info = files.lstat(key_file)
    if info is None:
        return None
    if info.is_symlink:
        resolved = files.resolve(key_file)
        target = files.stat(key_file)
        if not resolved.guest.startswith(home_prefix) or target is None or target.uid != user.uid:
            return None
    elif files.hard_links(key_file) > 1 and info.uid != user.uid:
        return None
    return files.read_text(key_file)


def _restore_outside_home(
    files: GuestFS, user: GuestUser, key_file: str, keys: list[PublicKey], *, replace: bool
) -> list[Change]:
    """A key file outside the home (``/etc/ssh/authorized_keys/%u``): root's, 0644, in a
    root-owned 0755 directory made only when its own parent exists; never the user's."""
    key_dir = posixpath.dirname(key_file) or "/"
    changes: list[Change] = []
    info = files.stat(key_dir)
    if info is None:
        parent = posixpath.dirname(key_dir) or "/"
        if not files.exists(parent):
            raise FixFailedError(
                f"the guest's sshd reads {user.name}'s keys from {key_file}, but {parent} "
                "does not exist in the guest: not creating it"
            )
        changes += files.ensure_dir(key_dir, mode=0o755, owner=(0, 0))
    elif not info.is_dir:
        raise FixFailedError(f"{key_dir} (where {key_file} should be) is not a directory")
    else:  # sshd (StrictModes) wants it root's or the user's, and writable by no one else
        owner = (info.uid, info.gid) if info.uid in (0, user.uid) else (0, 0)
        changes += files.set_metadata(key_dir, mode=_sane_dir_mode(info.permissions), owner=owner)
    current = files.read_text(key_file)
    content = authorized_keys_content(current, keys, replace=replace)
    return changes + files.write_file(key_file, content.encode(), mode=0o644, owner=(0, 0))


def restore_ssh_access(
    guest: Guest, user: GuestUser, keys: list[PublicKey], *, replace: bool
) -> list[Change]:
    """Make ``keys`` log ``user`` in: key file content, owners and modes along the path.

    The keys go to the first file the guest's sshd reads for the user (``AuthorizedKeysFile``
    as its sshd takes it). In the home the file is the user's (0600, ``~/.ssh`` 0700), and the
    keys it already has are kept only when the user could read them anyway (never those of a
    planted link or hard link to ``/etc/shadow``); elsewhere it stays root's (0644) and so does
    its directory.
    """
    files = guest.files
    key_file = authorized_keys_path(files, user)
    home_prefix = user.home.rstrip("/") + "/"
    if key_file.startswith(home_prefix):
        changes = _restore_in_home(files, user, key_file, keys, replace=replace)
    else:
        changes = _restore_outside_home(files, user, key_file, keys, replace=replace)
    if changes:
        changes += files.request_selinux_relabel()
    return changes
