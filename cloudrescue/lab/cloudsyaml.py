"""The lab's entry in clouds.yaml: the state dir's own file and the user's (merged)."""

from __future__ import annotations

import contextlib
import os
import pwd
from pathlib import Path
from typing import Any

import yaml

from cloudrescue.lab.model import LabConfig


def auth_url(config: LabConfig) -> str:
    """Keystone's URL of a lab."""
    return f"http://127.0.0.1:{config.api_port}/identity/v3"


def entry(config: LabConfig, credentials: dict[str, str]) -> dict[str, Any]:
    """The ``clouds:`` entry of a lab."""
    return {
        "auth": {
            "auth_url": auth_url(config),
            "username": credentials["username"],
            "password": credentials["password"],
            "project_name": credentials["project_name"],
            "user_domain_name": "Default",
            "project_domain_name": "Default",
        },
        "region_name": "RegionOne",
        "identity_api_version": 3,
    }


def user_file() -> tuple[Path, int, int]:
    """The user's clouds.yaml and who should own it.

    ``$OS_CLIENT_CONFIG_FILE`` if set, else ``~/.config/openstack/clouds.yaml`` of
    ``$SUDO_USER`` when run through sudo, else of the current user.
    """
    explicit = os.environ.get("OS_CLIENT_CONFIG_FILE")
    sudo_user = os.environ.get("SUDO_USER")
    account = pwd.getpwuid(os.geteuid())
    if sudo_user:
        with contextlib.suppress(KeyError):
            account = pwd.getpwnam(sudo_user)
    if explicit:
        return Path(explicit), account.pw_uid, account.pw_gid
    path = Path(account.pw_dir) / ".config/openstack/clouds.yaml"
    return path, account.pw_uid, account.pw_gid


def _load(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        return {}
    return data if isinstance(data, dict) else {}


def _write(path: Path, data: dict[str, Any], owner: tuple[int, int] | None) -> None:
    fresh = not path.parent.exists()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(path.name + ".cloudrescue-tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        yaml.safe_dump(data, handle, default_flow_style=False, sort_keys=False)
    if owner is not None:
        os.chown(temporary, *owner)
        if fresh:
            for directory in (path.parent, path.parent.parent):
                if directory.is_relative_to(Path(pwd.getpwuid(owner[0]).pw_dir)):
                    os.chown(directory, *owner)
    os.replace(temporary, path)


def write_state_file(path: Path, name: str, cloud: dict[str, Any]) -> None:
    """The state dir's own clouds.yaml holding only the lab's entry (0600)."""
    _write(path, {"clouds": {name: cloud}}, None)


def merge(path: Path, name: str, cloud: dict[str, Any], owner: tuple[int, int]) -> None:
    """Add (or replace) entry ``name`` in ``path``, keeping every other entry."""
    data = _load(path)
    clouds = data.get("clouds")
    data["clouds"] = {**(clouds if isinstance(clouds, dict) else {}), name: cloud}
    _write(path, data, owner if not path.exists() else (path.stat().st_uid, path.stat().st_gid))


def remove(path: Path, name: str, auth_url: str) -> bool:
    """Remove entry ``name`` if it still points at ``auth_url`` (another lab may own it now)."""
    data = _load(path)
    clouds = data.get("clouds")
    if not isinstance(clouds, dict):
        return False
    current = clouds.get(name)
    if not isinstance(current, dict) or current.get("auth", {}).get("auth_url") != auth_url:
        return False
    del clouds[name]
    stat = path.stat()
    _write(path, data, (stat.st_uid, stat.st_gid))
    return True
