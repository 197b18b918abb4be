"""Facts: values a playbook can reference as ``{{ facts.<name> }}``, found at run time.

Each fact says in which mount phases it is known (the guest's files only exist once it is
mounted); referencing a fact the playbook's phase does not have is a validation error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cloudrescue.fixes.common import RHEL_IDS, os_release
from cloudrescue.fixes.ssh_access import default_user
from cloudrescue.fixes.sshd_config import ssh_ports
from cloudrescue.guestfs import GuestFS
from cloudrescue.phase import MOUNT_MODES, MountMode, Phase
from cloudrescue.playbook.paramtypes import ParamTypeName, Value

FAMILIES = {
    "debian": frozenset({"debian", "ubuntu", "devuan", "raspbian", "linuxmint", "kali"}),
    "rhel": frozenset(RHEL_IDS),
    "suse": frozenset({"suse", "opensuse", "sles", "sled", "opensuse-leap"}),
}


def family_of(values: dict[str, str]) -> str:
    """``debian``, ``rhel``, ``suse`` or ``other`` from os-release ``ID`` and ``ID_LIKE``."""
    names = {values.get("ID", ""), *values.get("ID_LIKE", "").split()}
    for family, members in FAMILIES.items():
        if names & members:
            return family
    return "other"


def ssh_port(guest: GuestFS) -> int:
    """The (lowest) port the guest's sshd listens on."""
    return min(ssh_ports(guest))


@dataclass(frozen=True)
class Fact:
    """One fact: its type (as a parameter type), where it is known, and how it is found."""

    name: str
    kind: ParamTypeName
    description: str
    phases: frozenset[MountMode]
    sample: Value
    compute: Callable[[Phase], Value]


MOUNTED: frozenset[MountMode] = frozenset({"root"})
DISK: frozenset[MountMode] = frozenset({"root", "unmounted"})
EVERYWHERE: frozenset[MountMode] = frozenset(MOUNT_MODES)

FACTS: dict[str, Fact] = {
    fact.name: fact
    for fact in (
        Fact(
            "default_user",
            "user",
            "the image's cloud user (cloud-init's default user, a known cloud user name, "
            "else root)",
            MOUNTED,
            "root",
            lambda phase: default_user(phase.need_guest().files).name,
        ),
        Fact(
            "ssh_port",
            "int",
            "the port of the guest's sshd (its lowest `Port`/`ListenAddress` port, else 22)",
            MOUNTED,
            22,
            lambda phase: ssh_port(phase.need_guest().files),
        ),
        Fact(
            "os_id",
            "string",
            "the guest's os-release `ID` (debian, ubuntu, rocky...), `unknown` without one",
            DISK,
            "debian",
            lambda phase: phase.need_root().os_id or "unknown",
        ),
        Fact(
            "family",
            "string",
            "the guest's distribution family from os-release: debian, rhel, suse or other",
            MOUNTED,
            "debian",
            lambda phase: family_of(os_release(phase.need_guest().files)),
        ),
        Fact(
            "root",
            "path",
            "where the guest's root is mounted on the rescue system (e.g. /mnt)",
            MOUNTED,
            "/mnt",
            lambda phase: phase.need_guest().files.root,
        ),
        Fact(
            "root_device",
            "path",
            "the rescue system's device of the guest's root filesystem (e.g. /dev/vdb1)",
            DISK,
            "/dev/vdb1",
            lambda phase: phase.need_root().filesystem.device,
        ),
        Fact(
            "root_fstype",
            "string",
            "the filesystem type of the guest's root (ext4, xfs, btrfs...)",
            DISK,
            "ext4",
            lambda phase: phase.need_root().filesystem.fstype or "unknown",
        ),
        Fact(
            "address",
            "string",
            "the address cloudrescue reaches the instance at (as for `--address`)",
            EVERYWHERE,
            "203.0.113.7",
            lambda phase: phase.address,
        ),
    )
}
