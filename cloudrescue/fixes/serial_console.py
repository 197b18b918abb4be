"""Kernel messages and a login on the serial console (what the cloud's console log shows).

Sets ``console=tty0 console=ttyS0,115200n8`` in ``GRUB_CMDLINE_LINUX`` of
``/etc/default/grub`` (other ``console=`` arguments replaced), then regenerates the boot
configuration with the guest's own tools, chrooted: ``update-grub`` or ``grub-mkconfig``
(Debian/Ubuntu), ``grubby`` and ``grub2-mkconfig`` (RHEL-like). Needs the disk mounted with
the chroot binds. A regenerated grub.cfg that would boot from the rescue's device name is
refused and the previous one restored; a drop-in the tools would block on (a FIFO in
``/etc/default/grub.d``) is refused before anything changes. A dry run shows the
``/etc/default/grub`` diff and the commands that would regenerate the boot configuration (and
fails, like a real run, when the guest has none).
"""

from __future__ import annotations

import re
import shlex

from cloudrescue.disks.session import MountedGuest
from cloudrescue.errors import FixFailedError
from cloudrescue.fixes.common import chroot_ready, guest_program
from cloudrescue.fixes.sandbox import run_in_guest
from cloudrescue.guest import Guest
from cloudrescue.guestfs import MAX_READ, Change, GuestFS

DEFAULT_GRUB = "/etc/default/grub"
CONSOLE_ARGS = ("console=tty0", "console=ttyS0,115200n8")
_ROOT_ARG = re.compile(r"^\s*linux\S*\s+\S+.*?\sroot=(\S+)", re.MULTILINE)
_CMDLINE = re.compile(r"^(?P<lead>\s*GRUB_CMDLINE_LINUX=)(?P<value>.*)$", re.MULTILINE)


def with_serial_console(text: str) -> str:
    """``/etc/default/grub`` text whose ``GRUB_CMDLINE_LINUX`` has exactly our consoles."""
    match = _CMDLINE.search(text)
    if match is None:
        body = text + ("" if text.endswith("\n") or not text else "\n")
        return f'{body}GRUB_CMDLINE_LINUX="{" ".join(CONSOLE_ARGS)}"\n'
    try:
        words = shlex.split(match.group("value"))
        args = words[0].split() if words else []
    except ValueError:
        args = match.group("value").strip("\"'").split()
    kept = [arg for arg in args if not arg.startswith("console=")]
    value = " ".join([*kept, *CONSOLE_ARGS])
    return text[: match.start()] + f'{match.group("lead")}"{value}"' + text[match.end() :]


def _commands(files: GuestFS) -> list[tuple[list[str], str]]:
    """The guest's boot-config commands and what each rewrites; ``FixFailedError`` if none."""
    commands: list[tuple[list[str], str]] = []
    grubby = guest_program(files, "/usr/sbin/grubby", "/sbin/grubby")
    if grubby:
        args = " ".join(CONSOLE_ARGS)
        commands.append(([grubby, "--update-kernel=ALL", f"--args={args}"], "/boot/loader/entries"))
    update = guest_program(files, "/usr/sbin/update-grub", "/sbin/update-grub")
    mkconfig = guest_program(files, "/usr/sbin/grub-mkconfig", "/usr/sbin/grub2-mkconfig")
    if update:
        commands.append(([update], "/boot/grub/grub.cfg"))
    elif mkconfig:
        grub2 = mkconfig.endswith("grub2-mkconfig")
        output = "/boot/grub2/grub.cfg" if grub2 else "/boot/grub/grub.cfg"
        commands.append(([mkconfig, "-o", output], output))
    else:
        raise FixFailedError(
            "the guest has neither update-grub nor grub-mkconfig/grub2-mkconfig: "
            f"{DEFAULT_GRUB} cannot take effect",
            hint="install grub in the guest, or edit the bootloader configuration by hand",
        )
    return commands


GRUB_INPUTS = (("/etc/default/grub.d", ".cfg"), ("/boot/loader/entries", ".conf"))


def _unusable_inputs(files: GuestFS) -> list[str]:
    """The drop-ins ``update-grub``/``grubby`` read that are FIFOs, devices or huge files."""
    found = []
    for directory, suffix in GRUB_INPUTS:
        for name in files.listdir(directory):
            path = f"{directory}/{name}"
            info = files.stat(path) if name.endswith(suffix) else None
            if info is not None and not info.is_dir and (not info.is_file or info.size > MAX_READ):
                found.append(path)
    return found


def enable_serial_console(guest: Guest) -> list[Change]:
    """Serial console on the kernel command line, boot configuration regenerated. Idempotent.

    Raises ``FixFailedError``, before changing anything, when the guest lacks grub's tools
    (also in a dry run) or the disk is mounted without the chroot binds."""
    files = guest.files
    text = files.read_text(DEFAULT_GRUB)
    if text is None:
        raise FixFailedError(f"the guest has no {DEFAULT_GRUB}: not a grub-booted system")
    new = with_serial_console(text)
    if new == text:
        return []
    commands = _commands(files)
    unusable = _unusable_inputs(files)
    if unusable:
        raise FixFailedError(
            f"grub's tools would read {', '.join(unusable)}, which is not a regular file (or "
            "is too large): they would block or never end",
            hint="move it out of the way in the guest",
        )
    if not files.dry_run and not chroot_ready(guest.mount):
        raise FixFailedError(
            "regenerating grub's configuration needs the chroot binds (/dev, /proc, /sys)",
            hint="mount the disk with the chroot binds",
        )
    changes = files.write_file(DEFAULT_GRUB, new.encode())
    for argv, output in commands:
        detail = f"regenerated {output} ({' '.join(argv)})"
        if files.dry_run or not output.endswith(".cfg"):
            change = Change("modify", output, detail)  # grubby edits a directory of entries
        else:
            change = files.before_rewrite(output, detail)
        if not files.dry_run:
            result = run_in_guest(files, argv)
            if not result.ok:
                lines = (result.stderr or result.stdout).strip().splitlines()
                raise FixFailedError(f"`{' '.join(argv)}` failed in the guest: {lines[-1:]}")
            if output.endswith(".cfg"):
                _check_boot_root(files, output, guest.mount)
        changes.append(change)
    return changes


def _check_boot_root(files: GuestFS, config: str, mount: MountedGuest) -> None:
    """Refuse a grub.cfg that names the root by the rescue system's device names.

    Without an initramfs, or with ``GRUB_DISABLE_LINUX_UUID=true``, grub-mkconfig run from
    the rescue writes ``root=/dev/<rescue's name for the disk>``: the instance would not boot.
    """
    rescue_names = {record.source for record in mount.mounts if record.kind != "bind"}
    for value in _ROOT_ARG.findall(files.read_text(config) or ""):
        if value in rescue_names or value.startswith("/dev/loop"):
            raise FixFailedError(
                f"the regenerated {config} boots from root={value}, the rescue system's name "
                "for the disk: the instance would not boot",
                hint="let grub use UUIDs (GRUB_DISABLE_LINUX_UUID) or install an initramfs",
            )
