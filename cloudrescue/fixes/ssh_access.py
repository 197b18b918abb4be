"""Give a user SSH access back: authorized_keys content, and the modes sshd insists on.

sshd (``StrictModes yes``) ignores a key file when the home directory, ``~/.ssh`` or the
file itself is writable by others or owned by someone else, so the fix covers both the keys
and the ownership/modes along the path.
"""

from __future__ import annotations

import base64
import binascii
import shlex
from collections.abc import Iterable

import yaml

from cloudrescue.errors import InvalidInputError
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


def cloud_init_default_user(files: GuestFS) -> str | None:
    """``system_info.default_user.name`` from the guest's cloud-init config, if any."""
    text = files.read_text("/etc/cloud/cloud.cfg")
    if not text:
        return None
    try:
        config = yaml.safe_load(text)
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


def _sshd_setting(files: GuestFS, keyword: str) -> str | None:
    """First value of ``keyword`` in the guest's sshd_config (+ sshd_config.d), as sshd takes."""
    sources = ["/etc/ssh/sshd_config"]
    sources += [
        f"/etc/ssh/sshd_config.d/{name}"
        for name in files.listdir("/etc/ssh/sshd_config.d")
        if name.endswith(".conf")
    ]
    for source in sources:
        for line in (files.read_text(source) or "").splitlines():
            stripped = line.strip()
            if stripped.lower().startswith("match "):
                break  # later lines are conditional
            fields = stripped.split(None, 1)
            if len(fields) == 2 and fields[0].lower() == keyword.lower():
                return fields[1]
    return None


def authorized_keys_path(files: GuestFS, user: GuestUser) -> str:
    """Guest path of the user's key file, honouring ``AuthorizedKeysFile`` (%h, %u, %%)."""
    setting = _sshd_setting(files, "AuthorizedKeysFile")
    first = shlex.split(setting)[0] if setting else DEFAULT_AUTHORIZED_KEYS_FILE
    if first.lower() == "none":
        first = DEFAULT_AUTHORIZED_KEYS_FILE
    expanded = first.replace("%%", "\0").replace("%h", user.home).replace("%u", user.name)
    expanded = expanded.replace("\0", "%")
    return expanded if expanded.startswith("/") else f"{user.home.rstrip('/')}/{expanded}"


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


def restore_ssh_access(
    guest: Guest, user: GuestUser, keys: list[PublicKey], *, replace: bool
) -> list[Change]:
    """Make ``keys`` log ``user`` in: key file content, owners and modes along the path."""
    files = guest.files
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
    key_file = authorized_keys_path(files, user)
    key_dir = key_file.rsplit("/", 1)[0] or "/"
    home_prefix = user.home.rstrip("/") + "/"
    if key_dir.startswith(home_prefix):
        changes += _unlink_escaping_symlink(files, key_dir, home_prefix)
        changes += files.ensure_dir(key_dir, mode=0o700, owner=owner)
    current = files.read_text(key_file)
    content = authorized_keys_content(current, keys, replace=replace)
    changes += files.write_file(key_file, content.encode(), mode=0o600, owner=owner)
    if changes:
        changes += files.request_selinux_relabel()
    return changes
