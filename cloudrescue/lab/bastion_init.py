"""The init of the lab's bastion: an SSH jump host between the lab's bridge and its private
network (``python -m cloudrescue.lab.bastion_init <plan.json> <report-fd>``).

Runs like ``rescue_init`` (pid 1 of its own pid and mount namespaces, in the bastion's network
namespace): root is an overlay of the shared rescue image and a tmpfs; ``eth0`` gets the
bastion's address on the lab's bridge (default route through the host), ``eth1`` its address
on the private network. Root logs in with the bastion key only (no password), TCP forwarding
is allowed (``direct-tcpip``, what ``ssh -J`` and cloudrescue's ``--jump`` use), and the host
key is one fresh ed25519 key, announced on the bastion's console and in the report.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NoReturn

from cloudrescue.lab import init_common
from cloudrescue.lab.consolelog import CLOUD_INIT, Console, HostKeys
from cloudrescue.lab.mounting import Devices, prepare_root
from cloudrescue.lab.rescue_init import overlay_root
from cloudrescue.lab.system import run

HOSTNAME = "bastion"
HOST_KEY = "etc/ssh/ssh_host_ed25519_key"
# Drop-ins are read in name order and sshd keeps the first value: this one wins over the
# rescue image's 50-rescue.conf (which lets root in with a password).
BASTION_SSHD = f"""\
# lab bastion: root with its key only, TCP forwarding for jumps
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
AllowTcpForwarding yes
PermitOpen any
HostKey /{HOST_KEY}
"""


@dataclass(frozen=True)
class BastionPlan:
    """What the bastion's init is told (``<state-dir>/bastion/plan.json``; no secret)."""

    rescue_disk: str  # kernel name of the shared rescue image's loop device
    console: str
    mnt: str
    address: str  # on the lab's bridge, with prefix
    gateway: str
    private_address: str  # on the private network, with prefix
    authorized_key: str  # the bastion key's public line

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, path: Path) -> BastionPlan:
        return cls(**json.loads(path.read_text()))


def _address(device: str, address: str, console: Console, gateway: str | None = None) -> None:
    run(["ip", "link", "set", device, "up"])
    run(["ip", "addr", "add", address, "dev", device])
    if gateway:
        run(["ip", "route", "add", "default", "via", gateway, "dev", device])
    ip, _, prefix = address.partition("/")
    console.cloud_init(f"ci-info: | {device} | True | {ip} | /{prefix} | global |")


def boot(plan: BastionPlan, fd: int) -> NoReturn:
    """Start the bastion; never returns (execs its sshd)."""
    console = Console(Path(plan.console))
    socket.sethostname(HOSTNAME)
    console.kernel("Linux version 6.1.0-lab-cloud-amd64 (cloudrescue lab) #1 SMP PREEMPT_DYNAMIC")
    root = overlay_root(f"/dev/{plan.rescue_disk}", Path(plan.mnt))
    console.ok("Mounted sysroot.mount - /sysroot (read-only image + tmpfs overlay).")
    prepare_root(root, Devices([], {}), visible=[])
    _address("eth0", plan.address, console, plan.gateway)
    _address("eth1", plan.private_address, console)
    console.ok("Started networking (lab bridge on eth0, private network on eth1).")
    (root / "etc/ssh/sshd_config.d/00-bastion.conf").write_text(BASTION_SSHD)
    ssh_dir = root / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(ssh_dir, 0o700)
    keys = ssh_dir / "authorized_keys"
    keys.write_text(plan.authorized_key.strip() + "\n")
    os.chmod(keys, 0o600)
    run(["chroot", str(root), "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C",
         f"root@{HOSTNAME}", "-f", f"/{HOST_KEY}"])  # fmt: skip
    announcement = HostKeys.of([root / f"{HOST_KEY}.pub"])
    console.cloud_init(f"{CLOUD_INIT} running 'modules:final' (bastion)")
    console.announce(announcement)
    init_common.start_sshd(
        root,
        console,
        fd,
        issue=f"Debian GNU/Linux 12 {HOSTNAME} ttyS0 (lab bastion)",
        hostname=HOSTNAME,
        deferred_host_keys=announcement,  # handed to the runtime with the report
    )


def main(argv: list[str]) -> None:
    """Entry point: ``bastion_init <plan.json> <report-fd>``."""
    boot(BastionPlan.load(Path(argv[0])), int(argv[1]))


if __name__ == "__main__":
    main(sys.argv[1:])
