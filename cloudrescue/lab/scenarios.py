"""Ways to break an instance on purpose: each damages a mounted guest tree like a mistake would.

Every scenario but ``sudoers`` makes the instance unreachable for its default user's
``lab_key`` login (the TCP connection to port 22 fails, or the key is refused) until the disk
is repaired; ``sudoers`` lets the user log in and makes ``sudo`` refuse to run.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cloudrescue.errors import InvalidInputError
from cloudrescue.lab.guest_files import DEFAULT_UID, anchored, write
from cloudrescue.lab.system import run

WRONG_ADDRESS = "192.168.100.10/24"
CENTRAL_KEYS = "/etc/ssh/authorized_keys"
KEYS_DROP_IN = "etc/ssh/sshd_config.d/40-authorized-keys.conf"
FILL_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Target:
    """The mounted guest tree to damage and what the scenario may need to know."""

    root: Path
    user: str
    family: str
    scratch: Path


@dataclass(frozen=True)
class Scenario:
    """A named way to break an instance."""

    name: str
    description: str
    apply: Callable[[Target], str]


def _at(target: Target, path: str) -> Path:
    """A guest path of the tree being damaged, root-anchored (``guest_files.anchored``)."""
    return anchored(target.root, path)


def _home_of(target: Target) -> str:
    """The default user's home directory, as the guest's /etc/passwd says."""
    for line in _at(target, "/etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if len(fields) >= 7 and fields[0] == target.user:
            return fields[5]
    raise InvalidInputError(f"user {target.user} not found on the disk")


def _home(target: Target) -> Path:
    return _at(target, _home_of(target))


def lost_key(target: Target) -> str:
    """Replace the default user's authorized_keys with a key nobody has."""
    key = target.scratch / "lost"
    run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "someone-else@laptop", "-f", str(key)]
    )
    keys = _at(target, f"{_home_of(target)}/.ssh/authorized_keys")
    keys.write_text(key.with_suffix(".pub").read_text())
    return f"~{target.user}/.ssh/authorized_keys now holds only a key nobody has"


def ssh_symlink(target: Target) -> str:
    """Make ~/.ssh an absolute symlink to /root/.ssh (unreadable for the user; followed from
    a rescue system it would lead into the rescue's own /root)."""
    dot_ssh = _home(target) / ".ssh"
    root_ssh = _at(target, "/root/.ssh")
    root_ssh.mkdir(mode=0o700, exist_ok=True)
    lost_key(target)
    shutil.move(dot_ssh / "authorized_keys", root_ssh / "authorized_keys")  # may cross subvolumes
    shutil.rmtree(dot_ssh)
    dot_ssh.symlink_to("/root/.ssh")
    os.lchown(dot_ssh, DEFAULT_UID, DEFAULT_UID)
    return f"~{target.user}/.ssh is a symlink to /root/.ssh (root's, holding a key nobody has)"


def bad_perms(target: Target) -> str:
    """Make ~/.ssh world-writable and the home directory root's (StrictModes refuses keys)."""
    home = _home(target)
    _at(target, f"{_home_of(target)}/.ssh").chmod(0o777)
    run(["chown", "0:0", str(home)])
    return f"~{target.user}/.ssh is mode 0777 and ~{target.user} belongs to root"


def authorized_keys_file(target: Target) -> str:
    """Make sshd read keys from ``/etc/ssh/authorized_keys/%u`` (a drop-in, or the end of
    sshd_config when it includes none): root-owned and with no file for the default user, so
    its ``~/.ssh/authorized_keys`` (lab key still in it) is no longer read."""
    setting = f"AuthorizedKeysFile {CENTRAL_KEYS}/%u\n"
    config = _at(target, "/etc/ssh/sshd_config")
    if re.search(r"(?im)^\s*Include\s+/etc/ssh/sshd_config\.d/\*\.conf\s*$", config.read_text()):
        write(target.root, KEYS_DROP_IN, f"# keys are managed centrally\n{setting}")
        where = f"/{KEYS_DROP_IN}"
    else:
        config.write_text(config.read_text() + setting)
        where = "/etc/ssh/sshd_config"
    keys_dir = _at(target, CENTRAL_KEYS)
    keys_dir.mkdir(exist_ok=True)
    os.chown(keys_dir, 0, 0)
    keys_dir.chmod(0o755)
    (keys_dir / target.user).unlink(missing_ok=True)
    return f"{where} sets AuthorizedKeysFile {CENTRAL_KEYS}/%u; it has no file for {target.user}"


def sshd_config(target: Target) -> str:
    """Add a misspelt option to sshd_config: ``sshd -t`` fails, sshd does not start."""
    config = _at(target, "/etc/ssh/sshd_config")
    config.write_text(config.read_text() + "PasswordAuthentcation no\n")
    return "sshd_config has a misspelt option (PasswordAuthentcation): sshd refuses to start"


def firewall(target: Target) -> str:
    """Persist a firewall that drops SSH (iptables-persistent, or firewalld on RHEL-likes)."""
    if target.family == "rhel":
        zone = _at(target, "/etc/firewalld/zones/public.xml")
        zone.write_text(re.sub(r'\s*<service name="ssh"/>', "", zone.read_text()))
        return "firewalld's default zone (public) no longer allows ssh"
    write(
        target.root,
        "etc/iptables/rules.v4",
        "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
        "-A INPUT -p tcp -m tcp --dport 22 -j DROP\nCOMMIT\n",
    )
    return "/etc/iptables/rules.v4 drops tcp/22 (loaded at boot)"


def fstab(target: Target) -> str:
    """Add an fstab entry for a disk that is not there (no ``nofail``): emergency mode."""
    missing = uuid.uuid4()
    path = _at(target, "/etc/fstab")
    path.write_text(path.read_text() + f"UUID={missing}\t/srv/data\text4\tdefaults\t0 2\n")
    return f"/etc/fstab mounts UUID={missing} on /srv/data (no such disk, no nofail)"


def root_password(target: Target) -> str:
    """Set root's and the default user's passwords to unknown values, expired."""
    lines = "".join(f"{user}:{secrets.token_urlsafe(18)}\n" for user in ("root", target.user))
    run(["chroot", str(target.root), "chpasswd"], stdin=lines.encode())
    for user in ("root", target.user):
        run(["chroot", str(target.root), "chage", "-d", "0", user])
    return f"root and {target.user} have unknown, expired passwords"


DEBUG_LOG_LINE = b"2026-12-01T03:00:00Z app[812]: DEBUG retrying upstream connection (attempt 1)\n"


def disk_full(target: Target) -> str:
    """Fill the root filesystem completely, reserved blocks included.

    Preallocation (halving the size on ENOSPC) fills fast without writing data; a few small
    writes take the rest.
    """
    stats = os.statvfs(target.root)
    size = stats.f_bfree * stats.f_frsize
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    fd = os.open(_at(target, "/var/log/app-debug.log"), flags, 0o640)
    try:
        # a runaway debug log: text lines (what the fix sniffs to tell a log from a database),
        # then preallocated space (what an unclean shutdown leaves at a log's end: NULs)
        offset = os.write(fd, DEBUG_LOG_LINE * (64 * 1024 // len(DEBUG_LOG_LINE)))
        size -= offset
        while size >= FILL_CHUNK:
            try:
                os.posix_fallocate(fd, offset, size)
                offset += size
            except OSError:
                size //= 2
        os.lseek(fd, 0, os.SEEK_END)
        chunk = b"\0" * FILL_CHUNK
        while True:
            try:
                os.write(fd, chunk)
            except OSError:
                if len(chunk) <= 512:
                    break
                chunk = chunk[: len(chunk) // 2]
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
    return "the root filesystem is full (/var/log/app-debug.log), reserved blocks included"


def sudoers(target: Target) -> str:
    """Make the cloud user's sudoers file world-writable (sudo ignores it) and add a drop-in
    with a syntax error (sudo refuses to run at all)."""
    (_at(target, "/etc/sudoers.d/90-cloud-init-users")).chmod(0o666)
    write(
        target.root,
        "etc/sudoers.d/99-deploy",
        "Cmnd_Alias DEPLOY = /usr/bin/systemctl restart app\n"
        f"{target.user} ALL=(ALL) NOPASSWD DEPLOY\n",
        0o440,
    )
    return (
        "/etc/sudoers.d/90-cloud-init-users is mode 0666 and /etc/sudoers.d/99-deploy has a "
        "syntax error: sudo refuses to run"
    )


def network(target: Target) -> str:
    """Give eth0 a wrong static address in the disk's network configuration."""
    ip, _, prefix = WRONG_ADDRESS.partition("/")
    if target.family == "rhel":
        write(
            target.root,
            "etc/sysconfig/network-scripts/ifcfg-eth0",
            f"DEVICE=eth0\nBOOTPROTO=none\nONBOOT=yes\nIPADDR={ip}\nPREFIX={prefix}\n",
        )
        keyfile = _at(target, "/etc/NetworkManager/system-connections/cloud-init-eth0.nmconnection")
        if keyfile.is_file():
            keyfile.write_text(
                keyfile.read_text().replace(
                    "method=auto", f"method=manual\naddress1={WRONG_ADDRESS}"
                )
            )
        return f"eth0 is configured with the static address {WRONG_ADDRESS}"
    path = _at(target, "/etc/network/interfaces")
    text = re.sub(
        r"iface eth0 inet dhcp",
        f"iface eth0 inet static\n    address {WRONG_ADDRESS}",
        path.read_text(),
    )
    path.write_text(text)
    return f"/etc/network/interfaces gives eth0 the static address {WRONG_ADDRESS}"


# Files only the lab's rescue system has (its guests have no lvm2 and no 50-rescue.conf): a
# planted program reaching one of them has left the guest. It appends only to those it finds:
# inside the guest, ``>>`` would make one (in the guest's own sshd_config.d: its sshd broken by
# its own program). tests/hostile/test_lab_rescue.py.
RESCUE_ONLY = ("/etc/lvm/lvm.conf", "/etc/ssh/sshd_config.d/50-rescue.conf")
PLANTED_SSHD = """#!/bin/sh
# planted by the lab's hostile scenario: a compromised guest's sshd, run by cloudrescue on the
# rescue system. In a user namespace (cloudrescue's sandbox) it tries to write the rescue's own
# files through every way out it knows; then, and at the guest's own boot, it is the real sshd.
if [ -r /proc/self/uid_map ] && ! grep -q 4294967295 /proc/self/uid_map; then
    for target in {targets}; do
        for way in /proc/1/root /proc/*/root /proc/1/cwd/.. /proc/self/root/.. /..; do
            [ -f "$way$target" ] && echo owned 2>/dev/null >> "$way$target" &&
                echo "ESCAPED $way$target"
        done
    done
    mkdir -p /.jail 2>/dev/null && chroot /.jail /bin/true 2>/dev/null && echo CHROOT-ESCAPE
    mount -t tmpfs owned /mnt 2>/dev/null && echo MOUNTED
    rmdir /.jail 2>/dev/null
    echo "$*" >> {trace}
fi
exec /usr/sbin/sshd.real "$@"
"""
PLANTED_TRACE = "/var/lib/planted-sshd.log"  # in the guest: what the planted sshd was run for


def hostile(target: Target) -> str:
    """Plant what a compromised guest leaves for its rescuer, still bootable: the default
    user's ``authorized_keys`` a link to ``/etc/shadow`` and root's ``~/.ssh`` a ``..``-laden
    link to ``/etc/ssh`` (paths the rescue system has too), and an ``sshd`` that, run by
    cloudrescue in a user namespace (its sandbox) on the rescue, tries to write the rescue's
    own files (``RESCUE_ONLY``), notes that it ran (``PLANTED_TRACE``) and execs the real one
    (``sshd.real``); at the guest's own boot it is the real one at once."""
    user_ssh = _at(target, f"{_home_of(target)}/.ssh")
    keys = user_ssh / "authorized_keys"
    if keys.is_symlink() or keys.exists():
        keys.unlink()
    keys.symlink_to("/etc/shadow")
    os.lchown(keys, DEFAULT_UID, DEFAULT_UID)
    root_ssh = _at(target, "/root") / ".ssh"  # the link itself, never what it points to
    if root_ssh.is_symlink():
        root_ssh.unlink()
    elif root_ssh.is_dir():
        shutil.rmtree(root_ssh)
    root_ssh.symlink_to("../" * 12 + "etc/ssh")
    sshd = _at(target, "/usr/sbin") / "sshd"
    real = sshd.with_name("sshd.real")
    if not real.exists():
        os.rename(sshd, real)
    sshd.write_text(PLANTED_SSHD.format(targets=" ".join(RESCUE_ONLY), trace=PLANTED_TRACE))
    sshd.chmod(0o755)
    return (
        f"~{target.user}/.ssh/authorized_keys -> /etc/shadow, /root/.ssh -> ../../etc/ssh, "
        "/usr/sbin/sshd tries to reach the rescue system"
    )


SCENARIOS: dict[str, Scenario] = {
    scenario.name: scenario
    for scenario in (
        Scenario("lost-key", "authorized_keys replaced with a key nobody has", lost_key),
        Scenario("ssh-symlink", "~/.ssh is an absolute symlink to /root/.ssh", ssh_symlink),
        Scenario("bad-perms", "~/.ssh mode 0777, home owned by root (StrictModes)", bad_perms),
        Scenario(
            "authorized-keys-file",
            "sshd reads keys from /etc/ssh/authorized_keys/%u: none there for the user",
            authorized_keys_file,
        ),
        Scenario("sshd-config", "syntax error in sshd_config: sshd does not start", sshd_config),
        Scenario("firewall", "persisted firewall drops tcp/22", firewall),
        Scenario("fstab", "fstab entry for a missing disk: emergency mode", fstab),
        Scenario("root-password", "root/user passwords unknown and expired", root_password),
        Scenario("disk-full", "root filesystem 100% full: boot fails", disk_full),
        Scenario("network", "wrong static address in the network config", network),
        Scenario("sudoers", "sudoers.d: a world-writable file, a syntax error", sudoers),
        Scenario(
            "hostile",
            "links into the rescue's own paths, an sshd that tries to escape (still boots)",
            hostile,
        ),
    )
}


def get(name: str) -> Scenario:
    """The scenario called ``name`` (``InvalidInputError`` listing the known ones otherwise)."""
    try:
        return SCENARIOS[name]
    except KeyError:
        known = ", ".join(SCENARIOS)
        raise InvalidInputError(f"unknown scenario {name!r} (known: {known})") from None
