"""Domain actions that let the guest boot and come up on the network: fstab, network,
cloud-init, SELinux labels, serial console, disk space.

Each wraps one fix of ``cloudrescue.fixes`` (``(guest, ...)``, honouring ``guest.dry_run``)
with a typed parameter model.
"""

from __future__ import annotations

from typing import Annotated, get_args

from pydantic import Field

from cloudrescue.disks.discovery import human_size
from cloudrescue.fixes.cloud_init import reset_cloud_init
from cloudrescue.fixes.disk_space import MIB, free_disk_space
from cloudrescue.fixes.fstab import FstabMode, repair_fstab
from cloudrescue.fixes.network import switch_to_dhcp
from cloudrescue.fixes.selinux import relabel_selinux
from cloudrescue.fixes.serial_console import enable_serial_console
from cloudrescue.playbook.actions.base import (
    Action,
    ActionParams,
    Outcome,
    file_outcome,
)
from cloudrescue.playbook.fields import COUNT, FLAG, INTERFACE, TEXT, one_of
from cloudrescue.playbook.target import Target


class FstabParams(ActionParams):
    mode: Annotated[str, one_of("fstab repair mode", get_args(FstabMode))] = Field(
        "nofail", description="nofail: mark missing devices nofail; comment: comment them out"
    )


def _fstab(target: Target, params: FstabParams, step: str) -> Outcome:
    mode: FstabMode = "comment" if params.mode == "comment" else "nofail"
    return file_outcome(repair_fstab(target.phase.need_guest(), mode=mode))


class NetworkParams(ActionParams):
    interface: Annotated[str | None, INTERFACE] = Field(
        None, description="the NIC to configure (default or empty: the primary one)"
    )


def _network(target: Target, params: NetworkParams, step: str) -> Outcome:
    return file_outcome(switch_to_dhcp(target.phase.need_guest(), interface=params.interface))


class DiskSpaceParams(ActionParams):
    journal_max: Annotated[str, TEXT] = Field(
        "100M", description="archived journal size to keep (K, M, G suffixes)"
    )
    log_threshold_mib: Annotated[int, COUNT] = Field(
        64, description="live logs above this many MiB are cut down"
    )
    keep_tail_mib: Annotated[int, COUNT] = Field(
        1, description="MiB kept at the end of a cut log"
    )


def _disk_space(target: Target, params: DiskSpaceParams, step: str) -> Outcome:
    report = free_disk_space(
        target.phase.need_guest(),
        journal_max=params.journal_max,
        log_threshold=params.log_threshold_mib * MIB,
        keep_tail=params.keep_tail_mib * MIB,
    )
    verb = "would free" if target.phase.dry_run else "freed"
    return file_outcome(
        report.changes,
        note=f"{verb} about {human_size(report.estimated)}; "
        f"free before: {human_size(report.free_before)}",
    )


class CloudInitParams(ActionParams):
    """No parameters: cloud-init's whole state is reset."""


def _cloud_init(target: Target, params: CloudInitParams, step: str) -> Outcome:
    return file_outcome(reset_cloud_init(target.phase.need_guest()))


class SelinuxParams(ActionParams):
    permissive: Annotated[bool, FLAG] = Field(
        False, description="also set SELINUX=permissive (enforcing guests refusing logins)"
    )


def _selinux(target: Target, params: SelinuxParams, step: str) -> Outcome:
    return file_outcome(relabel_selinux(target.phase.need_guest(), permissive=params.permissive))


class SerialConsoleParams(ActionParams):
    """No parameters: console=tty0 console=ttyS0,115200n8."""


def _serial_console(target: Target, params: SerialConsoleParams, step: str) -> Outcome:
    return file_outcome(enable_serial_console(target.phase.need_guest()))


ACTIONS = (
    Action(
        "fstab_repair",
        "Keep missing devices in /etc/fstab from blocking the boot.",
        FstabParams,
        "/etc/fstab",
        "guest",
        _fstab,
    ),
    Action(
        "network_dhcp",
        "Make the primary NIC use DHCP in every network configuration the guest has.",
        NetworkParams,
        "netplan, ifupdown, NetworkManager and ifcfg files; udev NIC naming; cloud-init",
        "guest",
        _network,
    ),
    Action(
        "free_disk_space",
        "Free space on a full root: old journal files, package caches, big logs.",
        DiskSpaceParams,
        "deletes archived journals and cached packages, empties rotated logs (not undone)",
        "guest",
        _disk_space,
    ),
    Action(
        "cloud_init_reset",
        "Reset cloud-init's state so the next boot is a first boot (keys, user data again).",
        CloudInitParams,
        "/var/lib/cloud entries and the cloud-init.disabled marker (moved aside)",
        "guest",
        _cloud_init,
    ),
    Action(
        "selinux_relabel",
        "Have SELinux relabel every file at next boot (optionally go permissive).",
        SelinuxParams,
        "/.autorelabel, /etc/selinux/config with permissive",
        "guest",
        _selinux,
    ),
    Action(
        "serial_console",
        "Send kernel messages and a login to the serial console (the cloud's console log).",
        SerialConsoleParams,
        "/etc/default/grub and the generated boot configuration (the guest's own tools)",
        "chroot",
        _serial_console,
    ),
)
