"""Domain actions that give access back: keys, password, sshd, firewall, sudo.

Each wraps one fix of ``cloudrescue.fixes`` (``(guest, ...) -> list[Change]``, honouring
``guest.dry_run``) with a typed parameter model.
"""

from __future__ import annotations

from typing import Annotated, get_args

from pydantic import Field

from cloudrescue.fixes.firewall import FirewallMode, allow_ssh
from cloudrescue.fixes.passwords import reset_password
from cloudrescue.fixes.ssh_access import default_user, restore_ssh_access
from cloudrescue.fixes.sshd_config import SshdMode, allow_password_login, repair_sshd_config
from cloudrescue.fixes.sudoers import repair_sudoers
from cloudrescue.keys import PublicKey
from cloudrescue.playbook.actions.base import (
    Action,
    ActionParams,
    Outcome,
    file_outcome,
)
from cloudrescue.playbook.fields import FLAG, KEYS, PORTS, SECRET, USER, one_of
from cloudrescue.playbook.paramtypes import Secret
from cloudrescue.playbook.target import Target


class AuthorizedKeysParams(ActionParams):
    keys: Annotated[tuple[PublicKey, ...], KEYS] = Field(description="the keys to authorise")
    user: Annotated[str | None, USER] = Field(
        None, description="guest user (default: the image's cloud user, else root)"
    )
    replace: Annotated[bool, FLAG] = Field(
        False, description="replace the user's keys instead of adding to them"
    )


def _authorized_keys(target: Target, params: AuthorizedKeysParams, step: str) -> Outcome:
    guest = target.phase.need_guest()
    user = guest.files.user(params.user) if params.user else default_user(guest.files)
    return file_outcome(
        restore_ssh_access(guest, user, list(params.keys), replace=params.replace),
        note=f"user {user.name}",
    )


class SetPasswordParams(ActionParams):
    user: Annotated[str, USER] = Field(description="guest account (in its /etc/shadow)")
    password: Annotated[Secret, SECRET] = Field(description="the new password")


def _set_password(target: Target, params: SetPasswordParams, step: str) -> Outcome:
    secret = bytearray(params.password.reveal().encode())
    try:
        return file_outcome(reset_password(target.phase.need_guest(), params.user, secret))
    finally:
        secret[:] = bytes(len(secret))


class PasswordLoginParams(ActionParams):
    user: Annotated[str, USER] = Field(
        description="guest account that may log in with its password"
    )


def _password_login(target: Target, params: PasswordLoginParams, step: str) -> Outcome:
    guest = target.phase.need_guest()
    return file_outcome(allow_password_login(guest, guest.files.user(params.user).name))


class SshdConfigParams(ActionParams):
    mode: Annotated[str, one_of("sshd repair mode", get_args(SshdMode))] = Field(
        "comment",
        description="comment: comment out the lines sshd rejects; default: restore the "
        "packaged configuration first",
    )


def _sshd_config(target: Target, params: SshdConfigParams, step: str) -> Outcome:
    mode: SshdMode = "default" if params.mode == "default" else "comment"
    return file_outcome(repair_sshd_config(target.phase.need_guest(), mode=mode))


class FirewallParams(ActionParams):
    mode: Annotated[str, one_of("firewall mode", get_args(FirewallMode))] = Field(
        "allow",
        description="allow: let the ports in; disable: keep the firewalls from loading at boot",
    )
    ports: Annotated[list[int] | None, PORTS] = Field(
        None, description="TCP ports (default: the ports of the guest's sshd)"
    )


def _firewall(target: Target, params: FirewallParams, step: str) -> Outcome:
    mode: FirewallMode = "disable" if params.mode == "disable" else "allow"
    return file_outcome(allow_ssh(target.phase.need_guest(), mode=mode, ports=params.ports))


class SudoersParams(ActionParams):
    """No parameters: every sudoers file is checked."""


def _sudoers(target: Target, params: SudoersParams, step: str) -> Outcome:
    return file_outcome(repair_sudoers(target.phase.need_guest()))


ACTIONS = (
    Action(
        "authorized_keys",
        "Authorise public keys for a guest user, and fix the modes sshd insists on.",
        AuthorizedKeysParams,
        "the user's authorized_keys, ~/.ssh and home directory modes/owners",
        "guest",
        _authorized_keys,
    ),
    Action(
        "set_password",
        "Set a guest account's password (hashed here; unlocked, not expired).",
        SetPasswordParams,
        "/etc/shadow (never shown), /etc/passwd when it held the hash",
        "guest",
        _set_password,
    ),
    Action(
        "sshd_password_login",
        "Let a guest account log in over SSH with its password (an sshd `Match User` block).",
        PasswordLoginParams,
        "an sshd_config.d drop-in (or the end of sshd_config), checked with `sshd -T`",
        "guest",
        _password_login,
    ),
    Action(
        "sshd_config",
        "Make the guest's sshd configuration pass `sshd -t`; host keys, privsep directory.",
        SshdConfigParams,
        "sshd_config and its included files, missing host keys",
        "guest",
        _sshd_config,
    ),
    Action(
        "firewall_allow_ssh",
        "Let SSH through every firewall the guest has (iptables, nftables, ufw, firewalld).",
        FirewallParams,
        "the firewall rule files, or the units that load them",
        "guest",
        _firewall,
    ),
    Action(
        "sudoers_repair",
        "Make sudo usable: broken sudoers files set aside or lines commented, modes 0440.",
        SudoersParams,
        "/etc/sudoers and /etc/sudoers.d files (moved aside, commented out, chmod)",
        "guest",
        _sudoers,
    ),
)
