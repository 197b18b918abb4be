"""The init of an instance: boots its disk by the lab's boot model, then execs the disk's sshd.

Runs as pid 1 of the instance's pid namespace, in its own mount/UTS/IPC namespaces and its
network namespace (``python -m cloudrescue.lab.guest_init <plan.json> <report-fd>``):

1. mount the root filesystem (partition, btrfs subvolume or LVM LV through a loop device);
2. process ``/etc/fstab``; an entry without ``nofail`` that fails -> emergency mode, no sshd;
3. the root filesystem needs free space (the journal): a full root -> emergency mode;
4. the firewall the disk persisted, then eth0 from the disk's network configuration;
5. first boot of this instance (cloud-init, per instance): hostname, ``/etc/hosts``, default
   user's authorized_keys;
6. host keys generated if missing, fingerprints printed cloud-init style; ``sshd -t``, then
   ``pivot_root`` into the root (``init_common.enter_root``) and ``exec /usr/sbin/sshd -D -e``
   (the disk's own sshd and configuration). An emergency boot enters its root too (the empty
   mount point when the root filesystem did not mount) and idles there.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import NoReturn

from cloudrescue.errors import LabError
from cloudrescue.lab import boot_firewall, init_common, netconfig
from cloudrescue.lab.bootplan import BootPlan
from cloudrescue.lab.consolelog import CLOUD_INIT, EMERGENCY, Console
from cloudrescue.lab.fstab_mounts import mount_fstab, mount_root, plan_devices, root_device
from cloudrescue.lab.guest_files import KERNEL_VERSION
from cloudrescue.lab.mounting import prepare_root

JOURNAL_RESERVE = 1024 * 1024
ETC_HOSTS = (  # cloud-init's hosts.debian.tmpl (manage_etc_hosts): sudo resolves the hostname
    "127.0.1.1 {hostname} {hostname}\n127.0.0.1 localhost\n\n"
    "# The following lines are desirable for IPv6 capable hosts\n"
    "::1 localhost ip6-localhost ip6-loopback\nff02::1 ip6-allnodes\nff02::2 ip6-allrouters\n"
)


def _emergency(root: Path, console: Console, fd: int) -> NoReturn:
    init_common.enter_root(root)
    console.line(EMERGENCY)
    console.close()
    init_common.report(fd, "emergency", sshd=False)
    init_common.idle()


def _fstab_ok(root: Path, plan: BootPlan, console: Console) -> bool:
    healthy = True
    for result in mount_fstab(root, plan_devices(plan)):
        entry = result.entry
        if result.status == "mounted":
            console.ok(f"Mounted {entry.target}.")
        elif result.status == "checked":
            console.ok(f"Activated {entry.fstype} {entry.target} ({entry.spec}).")
        elif result.status == "timeout":
            console.line(f"[ TIME ] Timed out waiting for device {entry.spec}.")
            console.line(f"[DEPEND] Dependency failed for {entry.target}.")
        elif result.status == "failed":
            console.failed(f"Failed to mount {entry.target}: {result.detail}")
        if not result.ok and not entry.nofail:
            healthy = False
    if not healthy:
        console.line("[DEPEND] Dependency failed for local-fs.target - Local File Systems.")
    return healthy


def _journal_ok(root: Path, console: Console) -> bool:
    journal = root / "var/log/journal"
    try:
        journal.mkdir(parents=True, exist_ok=True)
        fd = os.open(journal / "system.journal.new", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        try:
            os.write(fd, b"\0" * JOURNAL_RESERVE)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(journal / "system.journal.new", journal / "system.journal")
    except OSError as error:
        console.failed("Failed to start systemd-journald.service - Journal Service.")
        console.line(f"systemd-journald: Failed to open runtime journal: {error.strerror}")
        console.failed("Failed to start systemd-tmpfiles-setup.service - Create Volatile Files.")
        return False
    console.ok("Started systemd-journald.service - Journal Service.")
    return True


def _passwd_entry(root: Path, user: str) -> tuple[Path, int, int] | None:
    for line in (root / "etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if len(fields) >= 7 and fields[0] == user:
            return root / fields[5].lstrip("/"), int(fields[2]), int(fields[3])
    return None


def _first_boot(root: Path, plan: BootPlan, console: Console) -> None:
    """cloud-init's per-instance modules: hostname, /etc/hosts and the default user's keys,
    once."""
    marker = root / "var/lib/cloud/data/instance-id"
    try:
        if marker.read_text().strip() == plan.instance_id:
            return
    except FileNotFoundError:
        pass
    console.cloud_init(f"{CLOUD_INIT} running 'init' (first boot of this instance)")
    (root / "etc/hostname").write_text(plan.hostname + "\n")
    (root / "etc/hosts").write_text(ETC_HOSTS.format(hostname=plan.hostname))
    entry = _passwd_entry(root, plan.default_user)
    if entry is not None:
        home, uid, gid = entry
        ssh_dir = home / ".ssh"
        ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        keys = ssh_dir / "authorized_keys"
        keys.write_text("".join(key.strip() + "\n" for key in plan.public_keys))
        # ssh_authkey_fingerprints: the table's head names the user (its rows left out)
        console.cloud_init(
            f"ci-info: ++++Authorized keys from /{keys.relative_to(root)} for user "
            f"{plan.default_user}++++"
        )
        for path, mode in ((ssh_dir, 0o700), (keys, 0o600)):
            os.chown(path, uid, gid)
            os.chmod(path, mode)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(plan.instance_id + "\n")


def _network_and_firewall(root: Path, plan: BootPlan, console: Console) -> None:
    boot_firewall.flush()
    for loaded in boot_firewall.load_all(root):
        if loaded.ok:
            console.ok(f"Finished {loaded.unit}.")
        else:
            console.failed(f"Failed to start {loaded.unit}: {loaded.detail}")
    net = netconfig.interpret(root, plan.address)
    console.ok(f"Started networking ({net.source}{', DHCP' if net.dhcp else ''}).")
    gateway = plan.gateway if net.dhcp else None  # static configurations name no router here
    init_common.configure_eth0(net.addresses, console, plan.mac, gateway)


def boot(plan: BootPlan, fd: int) -> NoReturn:
    """Boot the instance's disk; never returns (execs sshd, or idles)."""
    console = Console(Path(plan.console))
    socket.sethostname(plan.hostname)
    console.kernel(f"Linux version {KERNEL_VERSION} (cloudrescue lab) #1 SMP PREEMPT_DYNAMIC")
    console.kernel(f"Command line: root=/dev/{root_device(plan)} ro console=ttyS0")
    root = Path(plan.mnt) / "root"
    root.mkdir(parents=True, exist_ok=True)
    try:
        mount_root(plan, root)
    except LabError as error:
        console.failed(f"Failed to mount /sysroot: {error.message}")
        _emergency(root, console, fd)
    console.ok("Mounted sysroot.mount - /sysroot.")
    if not _fstab_ok(root, plan, console) or not _journal_ok(root, console):
        _emergency(root, console, fd)
    visible = [plan.disk, *plan.partitions.values(), plan.config_drive]
    prepare_root(root, plan_devices(plan), visible=visible)
    _network_and_firewall(root, plan, console)
    _first_boot(root, plan, console)
    console.cloud_init(f"{CLOUD_INIT} running 'modules:final'")
    console.host_keys(init_common.ensure_host_keys(root))
    issue = f"{init_common.pretty_name(root)} {plan.hostname} ttyS0"
    init_common.start_sshd(root, console, fd, issue=issue, hostname=plan.hostname)


def main(argv: list[str]) -> None:
    """Entry point: ``guest_init <plan.json> <report-fd>``."""
    boot(BootPlan.load(Path(argv[0])), int(argv[1]))


if __name__ == "__main__":
    main(sys.argv[1:])
