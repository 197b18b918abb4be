"""The init of a rescue system: the shared rescue image as root, the instance's disk beside it.

Runs like ``guest_init`` (``python -m cloudrescue.lab.rescue_init <plan.json> <report-fd>``,
the root password arrives on stdin). Root is an overlay of the read-only rescue image (its
loop device is shared by every rescue) and a tmpfs upper layer; the image is also mounted on
``/media/root-ro`` so ``lsblk`` shows it as the rescue's own, mounted disk. The instance's
disk, its partitions and its config drive appear as unmounted block devices (``/sys/block``
filtered, a udev database like coldplug writes). Host keys are fresh each rescue.

With ``defer_host_keys`` in the plan the fingerprint block is not printed here but handed to
the runtime with the report: the lab daemon prints it a while after nova shows RESCUE, as a
real rescue's cloud-init does (its ``modules:final`` stage runs after sshd is up).

With ``ssh_cut`` (the lab's fault of that name) every TCP packet to port 22 of the rescue is
answered with a reset: its sshd runs, but no login gets through.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path
from typing import NoReturn

from cloudrescue.lab import boot_firewall, init_common
from cloudrescue.lab.bootplan import BootPlan
from cloudrescue.lab.consolelog import CLOUD_INIT, Console, HostKeys
from cloudrescue.lab.mounting import Devices, mount, prepare_root
from cloudrescue.lab.system import run

RSA_BITS = 2048


def _overlay_root(plan: BootPlan, mnt: Path) -> Path:
    return overlay_root(f"/dev/{plan.rescue_disk}", mnt)


def overlay_root(device: str, mnt: Path) -> Path:
    """The rescue image on ``device`` as a root: read-only lower layer, tmpfs upper layer
    (``<mnt>/rescue-root``; the bastion boots the same way)."""
    lower, rw, root = mnt / "rescue-ro", mnt / "rescue-rw", mnt / "rescue-root"
    for directory in (lower, rw, root):
        directory.mkdir(parents=True, exist_ok=True)
    mount(device, lower, "ext4", "ro")
    mount("tmpfs", rw, "tmpfs", "mode=0755,size=1g")
    (rw / "upper").mkdir()
    (rw / "work").mkdir()
    mount(
        "overlay",
        root,
        "overlay",
        f"lowerdir={lower},upperdir={rw / 'upper'},workdir={rw / 'work'}",
    )
    mount(device, root / "media/root-ro", "ext4", "ro")
    return root


def boot(plan: BootPlan, fd: int, password: bytes) -> NoReturn:
    """Start the rescue system; never returns (execs the rescue's sshd)."""
    console = Console(Path(plan.console))
    socket.sethostname(plan.hostname)
    console.kernel("Linux version 6.1.0-lab-cloud-amd64 (cloudrescue lab) #1 SMP PREEMPT_DYNAMIC")
    console.kernel(f"Command line: root=/dev/{plan.rescue_disk} ro console=ttyS0 (rescue)")
    mnt = Path(plan.mnt)
    root = _overlay_root(plan, mnt)
    console.ok("Mounted sysroot.mount - /sysroot (rescue image, read-only + tmpfs overlay).")
    instance = [plan.disk, *plan.partitions.values()]
    names = [str(plan.rescue_disk), *instance, plan.config_drive]
    serials = {name: plan.serial for name in instance if plan.serial}
    devices = Devices(names, plan.rescue_devices())
    prepare_root(root, devices, visible=names, serials=serials, loop_control=True)
    boot_firewall.flush()
    if plan.ssh_cut:
        boot_firewall.cut_ssh()
    console.ok("Started networking (DHCP).")
    init_common.configure_eth0([plan.address], console, plan.mac, plan.gateway)
    run(["chroot", str(root), "chpasswd"], stdin=b"root:" + password.strip(b"\r\n") + b"\n")
    # Fresh keys at each rescue, as a rescue's cloud-init makes them; RSA at 2048 bits (what
    # OpenSSH made before 8.0): a 3072-bit key costs about a second of CPU, and 50 rescues at
    # once on the lab's 2 cores spent half the machine's time making them.
    keys = init_common.ensure_host_keys(root, rsa_bits=RSA_BITS)
    if plan.forge_host_keys:
        keys = init_common.forged_keys(plan.hostname, mnt / "rescue-rw" / "forged")
    announcement = HostKeys.of(keys)
    if not plan.defer_host_keys:
        console.cloud_init(f"{CLOUD_INIT} running 'modules:final' (rescue)")
        console.announce(announcement)
    issue = f"Debian GNU/Linux 12 {plan.hostname} ttyS0 (rescue system)"
    init_common.start_sshd(
        root,
        console,
        fd,
        issue=issue,
        hostname=plan.hostname,
        deferred_host_keys=announcement if plan.defer_host_keys else None,
    )


def main(argv: list[str]) -> None:
    """Entry point: ``rescue_init <plan.json> <report-fd>`` with the password on stdin."""
    password = sys.stdin.buffer.read()
    boot(BootPlan.load(Path(argv[0])), int(argv[1]), password)


if __name__ == "__main__":
    main(sys.argv[1:])
