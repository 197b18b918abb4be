"""Console logs as the lab prints them for each break scenario (``cloudrescue console log`` of
a broken lab instance, host keys shortened), and as real clouds print the failures the lab
does not make. Each log is a healthy first boot, then the broken boot."""

from __future__ import annotations

KERNEL = (
    "[    0.000021] Linux version 6.1.0-lab-cloud-amd64 (cloudrescue lab) #1 SMP PREEMPT_DYNAMIC\n"
    "[    0.000063] Command line: root=/dev/loop33p1 ro console=ttyS0\n"
    "[  OK  ] Mounted sysroot.mount - /sysroot.\n"
    "[  OK  ] Activated vfat /boot/efi (UUID=A423-D82B).\n"
)
JOURNAL = "[  OK  ] Started systemd-journald.service - Journal Service.\n"
NETWORK = (
    "[  OK  ] Finished netfilter-persistent.service.\n"
    "[  OK  ] Started networking (ifupdown, DHCP).\n"
    "<14>Dec 01 17:19:00 cloud-init: ci-info: | eth0 | True | {address} | /24 | global | "
    "fa:16:3e:a6:c8:1e |\n"
)
KEYS = (
    "<14>Dec 01 17:19:00 cloud-init: Cloud-init v. 22.4.2 running 'modules:final'\n"
    "<14>Dec 01 17:19:03 cloud-init: -----BEGIN SSH HOST KEY FINGERPRINTS-----\n"
    "<14>Dec 01 17:19:03 cloud-init: 256 SHA256:pQ0jAKMgY/zL0Y/blWLA0vRTiuhdeyOKEE8gMQeJGpQ "
    "root@web-1 (ED25519)\n"
    "<14>Dec 01 17:19:03 cloud-init: -----END SSH HOST KEY FINGERPRINTS-----\n"
)
SSHD_UP = (
    "[  OK  ] Started ssh.service - OpenBSD Secure Shell server.\n"
    "\n"
    "Debian GNU/Linux 12 (bookworm) web-1 ttyS0\n"
    "\n"
    "web-1 login: \n"
)
EMERGENCY = (
    'You are in emergency mode. After logging in, type "journalctl -xb" to view\n'
    'system logs, "systemctl reboot" to reboot, "systemctl default" or "exit"\n'
    "to boot into default mode.\n"
    "Cannot open access to console, the root account is locked.\n"
    "See sulogin(8) man page for more details.\n"
    "\n"
    "Press Enter to continue.\n"
)
ADDRESS = "203.0.113.10"  # FakeCloud's default address
HEALTHY = KERNEL + JOURNAL + NETWORK.format(address=ADDRESS) + KEYS + SSHD_UP


def broken(boot: str) -> str:
    """A healthy first boot, then ``boot``."""
    return HEALTHY + boot


FSTAB = broken(
    KERNEL
    + "[ TIME ] Timed out waiting for device UUID=8bf51525-9c9c-4554-b6c6-4c5db0ba5ed3.\n"
    "[DEPEND] Dependency failed for /srv/data.\n"
    "[DEPEND] Dependency failed for local-fs.target - Local File Systems.\n" + EMERGENCY
)
DISK_FULL = broken(
    KERNEL
    + "[FAILED] Failed to start systemd-journald.service - Journal Service.\n"
    "systemd-journald: Failed to open runtime journal: No space left on device\n"
    "[FAILED] Failed to start systemd-tmpfiles-setup.service - Create Volatile Files.\n"
    + EMERGENCY
)
SSHD_CONFIG = broken(
    KERNEL + JOURNAL + NETWORK.format(address=ADDRESS) + KEYS
    + "[FAILED] Failed to start ssh.service - OpenBSD Secure Shell server.\n"
    "sshd: /etc/ssh/sshd_config: line 123: Bad configuration option: PasswordAuthentcation\n"
    "sshd: /etc/ssh/sshd_config: terminating, 1 bad configuration options\n"
)
NETWORK_BROKEN = broken(
    KERNEL + JOURNAL
    + NETWORK.format(address="192.168.100.10").replace("(ifupdown, DHCP)", "(ifupdown)")
    + KEYS + SSHD_UP
)
NO_ADDRESS = broken(
    KERNEL + JOURNAL
    + "<14>Dec 01 17:19:00 cloud-init: ci-info: | eth0 | False |      .      |       .       |"
    "   .    | fa:16:3e:a6:c8:1e |\n" + KEYS + SSHD_UP
)
# What real clouds print for failures the lab does not make (one line or two each).
KERNEL_PANIC = broken(
    KERNEL + "[    2.104512] VFS: Cannot open root device \"vda1\" or unknown-block(0,0)\n"
    "[    2.104980] Kernel panic - not syncing: VFS: Unable to mount root fs on "
    "unknown-block(0,0)\n"
)
NO_BOOT_DEVICE = broken(
    "SeaBIOS (version 1.16.0)\nBooting from Hard Disk...\nBoot failed: not a bootable disk\n\n"
    "No bootable device.\n"
)
GRUB_PROMPT = broken(
    "error: no such partition.\nEntering rescue mode...\ngrub rescue> \n"
)
FSCK = broken(
    KERNEL + "/dev/vda1 contains a file system with errors, check forced.\n"
    "/dev/vda1: UNEXPECTED INCONSISTENCY; RUN fsck MANUALLY.\n"
    "\t(i.e., without -a or -p options)\n"
    "[FAILED] Failed to start systemd-fsck-root.service - File System Check on Root Device.\n"
)
SELINUX = broken(
    KERNEL + "*** Warning -- SELinux targeted policy relabel is required.\n"
    "*** Relabeling could take a very long time, depending on file\n"
)
CLOUD_INIT = broken(
    KERNEL + JOURNAL + NETWORK.format(address=ADDRESS)
    + "[   12.5] cloud-init[612]: 2024-05-01 10:00:01,123 - util.py[WARNING]: Getting data "
    "from <class 'DataSourceOpenStack'> failed\n"
    "[   12.9] cloud-init[612]: Cloud-init v. 23.1 finished at Wed, 01 May 2024 10:00:02 "
    "+0000. Datasource DataSourceNone.  Up 12.90 seconds\n" + SSHD_UP
)
DHCP = broken(
    KERNEL + JOURNAL + "[   15.1] dhclient[401]: No DHCPOFFERS received.\n"
    "[FAILED] Failed to start networking.service - Raise network interfaces.\n" + SSHD_UP
)
STRICT_MODES = broken(
    KERNEL + JOURNAL + NETWORK.format(address=ADDRESS) + KEYS + SSHD_UP
    + "[  130.2] sshd[913]: Authentication refused: bad ownership or modes for directory "
    "/home/debian\n"
)
SUDOERS = broken(
    KERNEL + JOURNAL + NETWORK.format(address=ADDRESS) + KEYS + SSHD_UP
    + "[  140.0] sudo[922]: >>> /etc/sudoers.d/99-deploy: syntax error near line 2 <<<\n"
)
# The guest's text is hostile: escape sequences, markup, a forged line break.
HOSTILE = broken(
    KERNEL + "[DEPEND] Dependency failed for local-fs.target \x1b[2J[bold]x[/]\x1b]0;owned\x07\n"
    + EMERGENCY
)
