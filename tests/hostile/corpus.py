"""The hostile disk corpus (issue 8): what a compromised or broken server can leave on its disk,
planted where the shipped playbooks read and write.

``furnish`` makes a guest tree every shipped playbook acts on (a key to add, a sudoers file with
the wrong mode, a firewall dropping SSH, a static network, cloud-init state, an SELinux guest,
big logs...): on the Debian-like tree of ``tests/playbook/conftest.py:build_guest`` (``tree``),
or on the lab's debootstrapped guest (``debian``) when a case needs the guest's real programs.
A ``Case`` then plants one hostile thing into it:

* symlinks at every path a playbook writes (and the directories above them), absolute and
  ``..``-laden, pointing at this machine's own files (``/etc/shadow``, ``/root/.ssh``,
  ``/etc``) and at a canary directory outside the guest;
* hard links from the user's home and from ``/var/log`` to ``/etc/shadow``;
* FIFOs and device nodes where files are expected, sparse 100 GB files as configuration
  files and logs;
* file names with newlines, terminal escapes, Rich markup and 255 bytes; an os-release with
  markup and escapes; YAML "billion laughs" and too deep nesting (netplan, cloud-init), an
  XML one (a firewalld zone);
* planted programs (``sshd``, ``visudo``, ``nft``, ``update-grub``, ``grub-mkconfig``,
  ``grubby``) that try to reach the rescue system: ``/proc/*/root``, ``chroot``, ``mount``,
  ``mknod``, and a device node of a disk only the rescue has (``CanaryDisk``); and FIFOs,
  devices and huge files where those programs read.

``FILES`` and ``DIRECTORIES`` say which shipped playbooks touch each planted path, ``INTENDED``
which guest paths each playbook is meant to change. ``test_corpus.py`` runs every case through
every playbook that touches its path and compares ``GuestState`` (the guest's files) and
``host_state`` (this machine's) before and after.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import posixpath
import shutil
import stat
import subprocess
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Literal

from cloudrescue.lab.guest_files import anchored
from tests.playbook.conftest import build_guest

GuestKind = Literal["tree", "debian"]
USER = (1000, 1000)
ROOT = (0, 0)
ADM = 4
HUGE = 100 * 1024**3  # apparent size of the sparse files: 100 GB
BIG = 64 * 1024 * 1024  # files above this are hashed by their ends (the sparse ones)
NAME_MAX = 255
CANARY_DISK = b"the rescue's own disk: must never change\n".ljust(1 << 20, b"\0")

# -- the guest every playbook acts on -------------------------------------------------------------

OLD_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOldKeyOfTheGuestsUserNobodyHasAnyMore000000 old@laptop"
)
ROOT_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIRootKeyOfTheGuestItselfNotTheRescues000000 root@guest"
)
SUDOERS = (
    "Defaults\tenv_reset\nroot\tALL=(ALL:ALL) ALL\n%sudo\tALL=(ALL:ALL) ALL\n"
    "@includedir /etc/sudoers.d\n"
)
DROP_SSH = (
    "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
    "-A INPUT -p tcp -m tcp --dport 22 -j DROP\nCOMMIT\n"
)
NFTABLES = """\
#!/usr/sbin/nft -f
flush ruleset
include "/etc/nftables.d/*.nft"
table inet filter {
\tchain input {
\t\ttype filter hook input priority filter; policy drop;
\t\tct state established,related accept
\t}
}
"""
STATIC_INTERFACES = (
    "auto lo\niface lo inet loopback\n\nauto eth0\niface eth0 inet static\n"
    "    address 192.168.100.10/24\n    gateway 192.168.100.1\n"
)
STATIC_NETPLAN = (
    "network:\n  version: 2\n  ethernets:\n    eth0:\n      addresses: [192.168.100.10/24]\n"
    "      gateway4: 192.168.100.1\n"
)
STATIC_KEYFILE = (
    "[connection]\nid=eth0\ntype=ethernet\ninterface-name=eth0\n\n"
    "[ipv4]\nmethod=manual\naddress1=192.168.100.10/24\n"
)
STATIC_IFCFG = "DEVICE=eth0\nBOOTPROTO=none\nONBOOT=yes\nIPADDR=192.168.100.10\nPREFIX=24\n"
NO_CLOUD_NETWORK = "network: {config: disabled}\n"
LOG_LINES = "".join(f"Dec  1 10:{n:02d}:00 guest sshd[{n}]: a log line\n" for n in range(60))

# guest path -> (text, mode, owner); written by ``furnish`` on both kinds of guest
FURNISHED: dict[str, tuple[str, int, tuple[int, int]]] = {
    "/home/debian/.ssh/authorized_keys": (OLD_KEY + "\n", 0o600, USER),
    "/root/.ssh/authorized_keys": (ROOT_KEY + "\n", 0o600, ROOT),
    "/etc/ssh/sshd_config.d/50-cloud-init.conf": (
        "PasswordAuthentication no\nPasswordAuthentcation no\n",
        0o644,
        ROOT,
    ),
    "/etc/sudoers": (SUDOERS, 0o440, ROOT),
    "/etc/sudoers.d/90-cloud-init-users": ("debian ALL=(ALL) NOPASSWD:ALL\n", 0o644, ROOT),
    "/etc/iptables/rules.v4": (DROP_SSH, 0o644, ROOT),
    "/etc/nftables.conf": (NFTABLES, 0o755, ROOT),
    "/etc/nftables.d/10-local.nft": ("# nothing yet\n", 0o644, ROOT),
    "/lib/systemd/system/nftables.service": (
        "[Service]\nExecStart=/usr/sbin/nft -f x\n",
        0o644,
        ROOT,
    ),
    "/etc/default/grub": ('GRUB_DEFAULT=0\nGRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX=""\n', 0o644, ROOT),
    "/var/lib/cloud/instances/iid-1/datasource": ("DataSourceNoCloud\n", 0o644, ROOT),
    "/var/lib/cloud/instances/iid-1/sem/config_ssh": ("done\n", 0o644, ROOT),
    "/var/lib/cloud/data/instance-id": ("iid-1\n", 0o644, ROOT),
    "/var/lib/cloud/seed/nocloud/meta-data": ("instance-id: iid-1\n", 0o644, ROOT),
    "/etc/cloud/cloud-init.disabled": ("", 0o644, ROOT),
    "/etc/cloud/cloud.cfg.d/99-disable-network-config.cfg": (NO_CLOUD_NETWORK, 0o644, ROOT),
    "/etc/network/interfaces": (STATIC_INTERFACES, 0o644, ROOT),
    "/etc/netplan/50-cloud-init.yaml": (STATIC_NETPLAN, 0o600, ROOT),
    "/etc/NetworkManager/system-connections/eth0.nmconnection": (STATIC_KEYFILE, 0o600, ROOT),
    "/etc/sysconfig/network-scripts/ifcfg-eth0": (STATIC_IFCFG, 0o644, ROOT),
    "/etc/udev/rules.d/70-persistent-net.rules": (
        'SUBSYSTEM=="net", ATTR{address}=="52:54:00:12:34:56", NAME="eth0"\n',
        0o644,
        ROOT,
    ),
    "/etc/selinux/config": ("SELINUX=enforcing\nSELINUXTYPE=targeted\n", 0o644, ROOT),
    "/var/log/syslog": (LOG_LINES, 0o640, (0, ADM)),
    "/var/log/syslog.1": (LOG_LINES, 0o640, (0, ADM)),
    "/var/log/auth.log": (LOG_LINES, 0o640, (0, ADM)),
    "/var/cache/apt/archives/old_1.0_amd64.deb": ("!<arch>\nnot really a package\n", 0o644, ROOT),
}
FURNISHED_LINKS = {
    "/var/lib/cloud/instance": "/var/lib/cloud/instances/iid-1",
    "/etc/systemd/system/multi-user.target.wants/nftables.service": (
        "/lib/systemd/system/nftables.service"
    ),
}
FURNISHED_DIRS = ("/var/log/journal", "/boot/grub", "/etc/default/grub.d")
TREE_ONLY = ("/etc/sudoers",)  # the debootstrapped guest keeps its own


def _write(root: Path, path: str, text: str | bytes, mode: int, owner: tuple[int, int]) -> Path:
    """Write a guest file of a tree being built (its links followed inside the tree)."""
    where = anchored(root, path)
    where.parent.mkdir(parents=True, exist_ok=True)
    where.write_bytes(text.encode() if isinstance(text, str) else text)
    os.chown(where, *owner)
    os.chmod(where, mode)
    return where


def furnish(root: Path, kind: GuestKind, host_keys: dict[str, bytes]) -> None:
    """Make the guest at ``root`` one every shipped playbook has something to do on."""
    if kind == "tree":
        build_guest(root)
    for path, (text, mode, owner) in FURNISHED.items():
        if kind == "debian" and path in TREE_ONLY:
            continue
        _write(root, path, text, mode, owner)
    for name, data in host_keys.items():
        _write(root, f"/etc/ssh/{name}", data, 0o644 if name.endswith(".pub") else 0o600, ROOT)
    for path, target in FURNISHED_LINKS.items():
        link = anchored(root, path)
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.is_symlink():
            link.symlink_to(target)
    for directory in FURNISHED_DIRS:
        anchored(root, directory).mkdir(parents=True, exist_ok=True)
    for directory in ("/home/debian", "/home/debian/.ssh"):
        os.chown(anchored(root, directory), *USER)
    os.chmod(anchored(root, "/home/debian/.ssh"), 0o700)
    os.chmod(anchored(root, "/root/.ssh"), 0o700)


# -- this machine, playing the rescue system -----------------------------------------------------

# The fake rescue's own files (tests/fakes.py RescueHost keeps them under its root): what a
# GuestFS escape through the file calls would land on.
RESCUE_FILES = {
    "/etc/shadow": "root:$6$rescue$RescueSystemsOwnRootHash:19000:0:99999:7:::\n",
    "/etc/passwd": "root:x:0:0:root:/root:/bin/bash\n",
    "/etc/fstab": "LABEL=rescue / ext4 ro 0 1\n",
    "/etc/ssh/sshd_config": "PermitRootLogin yes\nPasswordAuthentication yes\n",
    "/etc/sudoers.d/rescue": "root ALL=(ALL) ALL\n",
    "/etc/default/grub": 'GRUB_CMDLINE_LINUX="rescue"\n',
    "/etc/selinux/config": "SELINUX=disabled\n",
    "/etc/iptables/rules.v4": "*filter\nCOMMIT\n",
    "/etc/nftables.conf": "flush ruleset\n",
    "/root/.ssh/authorized_keys": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIRescueOperator op@rescue\n",
    "/var/log/syslog": "rescue log\n",
    "/var/lib/cloud/instance/obj.pkl": "rescue's cloud-init state\n",
}

# This machine's own files the corpus' links name (content, mode and owner compared) and the
# directories they are in or would be created in (their entries compared: names, types, modes).
HOST_FILES = ("/etc/shadow", "/etc/passwd", "/etc/group", "/etc/fstab", "/etc/nftables.conf")
HOST_DIRS = (
    "/",
    "/etc",
    "/etc/ssh",
    "/etc/ssh/sshd_config.d",
    "/etc/default",
    "/etc/selinux",
    "/etc/sudoers.d",
    "/etc/iptables",
    "/etc/netplan",
    "/etc/network",
    "/etc/cloud",
    "/root/.ssh",
    "/var/lib/cloud",
    "/boot",
)
HOST_NAMES_ONLY = ("/var/log", "/var/cache/apt/archives")  # busy or big: the names only


@dataclass(frozen=True)
class CanaryDisk:
    """A loop device over a small image only the tests use: the "rescue's own disk" a planted
    device node (``b <major> <minor>``, mode 0666) in the guest points at."""

    image: Path
    device: str
    major: int
    minor: int

    def digest(self) -> str:
        return hashlib.sha256(self.image.read_bytes()).hexdigest()

    def reset(self) -> None:
        """Put the known content back (through the device, as a write to it would go)."""
        fd = os.open(self.device, os.O_WRONLY)
        try:
            os.write(fd, CANARY_DISK)
            os.fsync(fd)
        finally:
            os.close(fd)


@dataclass
class World:
    """The places of one hostile run.

    ``rescue`` is the fake rescue system's root (``RescueHost`` keeps its own files there),
    ``tree`` the guest's disk as mounted on it (``<rescue>/mnt``), ``canary`` a directory of
    this machine outside both, ``out`` where a run may write on this machine (collect-logs).
    """

    base: Path
    kind: GuestKind
    disk: CanaryDisk | None = None
    fifos: list[Path] = field(default_factory=list)
    upper: Path | None = None  # the debootstrapped guest's overlay upper layer
    lower: Path | None = None

    @property
    def rescue(self) -> Path:
        return self.base / "rescue"

    @property
    def tree(self) -> Path:
        return self.rescue / "mnt"

    @property
    def canary(self) -> Path:
        return self.base / "canary"

    @property
    def out(self) -> Path:
        return self.base / "out"

    def at(self, path: str) -> Path:
        """The guest path on this machine: its directory as the guest resolves it (a guest
        link never leads out of the tree), its last component as it is (a link not followed)."""
        directory, name = posixpath.split(path)
        return anchored(self.tree, directory) / name if name else anchored(self.tree, directory)


def make_rescue(world: World) -> None:
    """The fake rescue system's own files, and the canary and output directories."""
    for path, text in RESCUE_FILES.items():
        where = world.rescue / path.lstrip("/")
        where.parent.mkdir(parents=True, exist_ok=True)
        where.write_text(text)
    (world.rescue / "tmp").mkdir(mode=0o1777, exist_ok=True)
    (world.canary / "dir").mkdir(parents=True)
    (world.canary / "file").write_text("canary: a file of this machine, outside the guest\n")
    (world.canary / "dir" / "authorized_keys").write_text("canary keys\n")
    world.out.mkdir()


# -- what a run may change ------------------------------------------------------------------------

# Guest paths each playbook is meant to change (fnmatch patterns: ``*`` crosses ``/``). A root
# file is where the guest's own links lead (``/etc/ssh/sshd_config`` -> elsewhere in the
# guest is edited there, as the guest's sshd reads it): such patterns also match where they
# lead, resolved inside the guest, the directory they name and each link they match. A ``~``
# pattern resolves its directory only (logs: ``find`` follows no link in ``/var/log``); a
# ``=`` pattern is taken literally (files given to a user: their links are replaced, never
# followed).
INTENDED: dict[str, tuple[str, ...]] = {
    "fix-ssh-keys": (  # for the cloud user, or root when it has no home (the default user)
        "=/home/debian",
        "=/home/debian/.ssh",
        "=/home/debian/.ssh/authorized_keys",
        "=/root",
        "=/root/.ssh",
        "=/root/.ssh/authorized_keys",
        "/.autorelabel",
    ),
    "fix-sshd-config": (
        "/etc/ssh/sshd_config",
        "/etc/ssh/sshd_config.d/*",
        "/etc/ssh/ssh_host_*",
        "/var/empty/sshd",
        "/.autorelabel",
    ),
    "reset-password": (
        "/etc/shadow",
        "/etc/passwd",
        "/etc/ssh/sshd_config",
        "/etc/ssh/sshd_config.d",
        "/etc/ssh/sshd_config.d/05-cloudrescue-password-*.conf",
        "/.autorelabel",
    ),
    "fix-firewall": (
        "/etc/iptables/*",
        "/etc/sysconfig/iptables",
        "/etc/sysconfig/ip6tables",
        "/etc/nftables.conf",
        "/etc/sysconfig/nftables.conf",
        "/etc/ufw/*",
        "/etc/firewalld/zones",
        "/etc/firewalld/zones/*",
        "/etc/systemd/system/*",
        "/.autorelabel",
    ),
    "fix-fstab": ("/etc/fstab", "/.autorelabel"),
    "fix-network": (
        "/etc/netplan/*",
        "/etc/network/interfaces",
        "/etc/network/interfaces.d/*",
        "/etc/NetworkManager/system-connections/*",
        "/etc/sysconfig/network-scripts/ifcfg-*",
        "/etc/udev/rules.d/70-persistent-net.rules",
        "/etc/cloud/cloud.cfg.d/*",
        "/.autorelabel",
    ),
    "fix-sudoers": ("/etc/sudoers", "/etc/sudoers.d/*"),
    "reset-cloud-init": ("/var/lib/cloud/*", "/etc/cloud/cloud-init.disabled", "/.autorelabel"),
    "selinux-relabel": ("/etc/selinux/config", "/.autorelabel"),
    "enable-serial-console": (
        "/etc/default/grub",
        "/boot/grub/grub.cfg",
        "/boot/grub2/grub.cfg",
        "/boot/loader/entries/*",
    ),
    "disk-full": (
        "~/var/log/*",
        "~/var/cache/apt/archives/*",
        "~/var/cache/dnf/*",
        "~/var/cache/yum/*",
    ),
    "collect-logs": (),
}
GUEST_PLAYBOOKS = tuple(INTENDED)  # the shipped playbooks that mount the guest (mount: root)


def _resolved(tree: Path, path: str) -> str | None:
    """``path`` resolved inside the guest at ``tree`` (``None`` for a loop of links)."""
    try:
        where = anchored(tree, path)
    except OSError:
        return None
    return "/" + where.relative_to(tree).as_posix() if where != tree else "/"


def allowed_patterns(tree: Path, playbook: str) -> list[str]:
    """The playbook's ``INTENDED`` patterns for this guest: each as written, and (see there)
    resolved through the guest's links as the guest has them now."""
    patterns: list[str] = []
    for pattern in INTENDED[playbook]:
        mode, pattern = (pattern[0], pattern[1:]) if pattern[0] in "=~" else ("", pattern)
        patterns.append(pattern)
        if mode == "=":
            continue
        parts = pattern.split("/")
        fixed = next((i for i, part in enumerate(parts) if any(c in part for c in "*?[")), None)
        head = "/".join(parts[:fixed]) if fixed is not None else pattern
        resolved = _resolved(tree, head or "/")
        if resolved is None:
            continue
        rest = "/".join(parts[fixed:]) if fixed is not None else ""
        patterns.append(posixpath.join(resolved, rest) if rest else resolved)
        if mode == "~" or fixed is None:
            continue
        for path in walk(tree / resolved.lstrip("/")):
            matched = posixpath.join(resolved, path.lstrip("/"))
            if fnmatch.fnmatchcase(matched, patterns[-1]) and (tree / matched[1:]).is_symlink():
                target = _resolved(tree, matched)
                if target is not None:
                    patterns.append(glob_escape(target))
    return patterns


def glob_escape(path: str) -> str:
    """``path`` as an fnmatch pattern matching only itself."""
    return "".join(f"[{char}]" if char in "*?[" else char for char in path)


def is_allowed(path: str, patterns: Iterable[str], *, new: bool) -> bool:
    """Whether a change at guest ``path`` is one the patterns allow (a backup next to an
    allowed path, ``<name>.cloudrescue-<stamp>``, when the path is new)."""
    for pattern in patterns:
        if fnmatch.fnmatchcase(path, pattern):
            return True
        backup = ".cloudrescue-" in posixpath.basename(path)
        if (
            new
            and backup
            and fnmatch.fnmatchcase(posixpath.dirname(path), posixpath.dirname(pattern))
        ):
            return True
    return False


# -- snapshots ------------------------------------------------------------------------------------

Entry = tuple[str, int, int, int, str]  # kind, mode, uid, gid, what (hash, target, rdev)


def _digest(path: str, size: int) -> str:
    """Content hash; a file larger than ``BIG`` (sparse) by its size and its two ends."""
    with open(path, "rb") as handle:
        if size <= BIG:
            return hashlib.file_digest(handle, "sha256").hexdigest()
        head = handle.read(1 << 20)
        handle.seek(max(size - (1 << 20), 0))
        return f"{size}:" + hashlib.sha256(head + handle.read()).hexdigest()


def entry(path: str | Path) -> Entry | None:
    """What is at ``path`` (``None`` when nothing): a FIFO or device is never opened."""
    path = str(path)
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    mode = info.st_mode
    if stat.S_ISREG(mode):
        kind, what = "file", _digest(path, info.st_size)
    elif stat.S_ISLNK(mode):
        kind, what = "link", os.readlink(path)
    elif stat.S_ISDIR(mode):
        kind, what = "dir", ""
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        kind, what = "device", f"{os.major(info.st_rdev)}:{os.minor(info.st_rdev)}"
    else:
        kind, what = "fifo" if stat.S_ISFIFO(mode) else "other", ""
    return kind, stat.S_IMODE(mode), info.st_uid, info.st_gid, what


def walk(root: Path, *, prune: Iterable[str] = ()) -> Iterator[str]:
    """Every path under ``root`` (links not followed), relative, as guest paths; the
    directories ``prune`` (relative, e.g. ``/mnt``) are not gone into."""
    top, pruned = str(root), set(prune)
    for folder, directories, names in os.walk(top):
        relative = folder[len(top) :]
        for name in [*directories, *names]:
            yield f"{relative}/{name}"
        directories[:] = [d for d in directories if f"{relative}/{d}" not in pruned]


Snapshot = dict[str, Entry]


def snapshot_tree(root: Path, *, prune: Iterable[str] = ()) -> Snapshot:
    """Every entry under ``root`` (but under the ``prune`` directories), by relative path."""
    found: Snapshot = {}
    top, pruned = str(root), set(prune)
    for path in walk(root, prune=pruned):
        if path not in pruned:
            what = entry(top + path)
            if what is not None:
                found[path] = what
    return found


@dataclass
class GuestState:
    """The guest's files before a run, to compare with after it.

    A ``tree`` guest is small: every path. The debootstrapped guest is an overlay whose lower
    layer never changes: only the paths of its upper layer (before or after) can differ, and
    a path only the run put there was, before, what the lower layer has.
    """

    world: World
    before: Snapshot = field(default_factory=dict)
    secrets: set[bytes] = field(default_factory=set)
    _upper_before: set[str] = field(default_factory=set)

    def _paths(self) -> set[str]:
        if self.world.upper is None:
            return set(walk(self.world.tree))
        return set(walk(self.world.upper))

    def take(self) -> GuestState:
        tree = str(self.world.tree)
        self.before = {p: e for p in self._paths() if (e := entry(tree + p))}
        self._upper_before = self._paths() if self.world.upper is not None else set()
        self.secrets = secret_lines(self.world)
        return self

    def leaks(self, changed: dict[str, tuple[Entry | None, Entry | None]]) -> dict[str, list[str]]:
        """Of the ``changed`` files, those the guest's users own that now hold lines of root's
        secrets (shadow hashes, root's keys, host keys): path -> those lines."""
        found: dict[str, list[str]] = {}
        for path, (_, after) in changed.items():
            if after is None or after[0] != "file" or after[2] == 0:
                continue
            lines = set((self.world.tree / path.lstrip("/")).read_bytes().splitlines())
            leaked = sorted(line.decode(errors="replace") for line in lines & self.secrets)
            if leaked:
                found[path] = leaked
        return found

    def diff(self) -> dict[str, tuple[Entry | None, Entry | None]]:
        """Paths whose entry changed: path -> (before, after)."""
        tree, lower = str(self.world.tree), self.world.lower
        paths = self._paths() | set(self.before)
        changed = {}
        for path in sorted(paths):
            old = self.before.get(path)
            if old is None and lower is not None and path not in self._upper_before:
                old = entry(f"{lower}{path}")
            new = entry(tree + path)
            if old != new:
                changed[path] = (old, new)
        return changed


SECRETS = (
    "/etc/shadow",
    "/etc/gshadow",
    "/root/.ssh/authorized_keys",
    "/etc/ssh/ssh_host_ed25519_key",
)


def secret_lines(world: World) -> set[bytes]:
    """The lines of the guest's root-only files (as they are, links not followed)."""
    lines: set[bytes] = set()
    for path in SECRETS:
        where = world.at(path)
        what = entry(where)
        if what is not None and what[0] == "file" and where.stat().st_size <= BIG:
            lines |= {line for line in where.read_bytes().splitlines() if len(line.strip()) >= 8}
    return lines


def host_state(world: World) -> dict[str, object]:
    """This machine's files a hostile guest could aim at: the canary, the files the links name,
    the listings of their directories, the fake rescue's own root, the canary disk."""
    state: dict[str, object] = {
        "canary": snapshot_tree(world.canary),
        "rescue": snapshot_tree(world.rescue, prune=["/mnt"]),
    }
    for path in HOST_FILES:
        state[path] = entry(Path(path))
    for directory in (*HOST_DIRS, *HOST_NAMES_ONLY):
        where = Path(directory)
        try:
            names = sorted(os.listdir(where))
        except (FileNotFoundError, NotADirectoryError):
            state[directory] = None
            continue
        if directory in HOST_NAMES_ONLY:
            state[directory] = names
        else:
            state[directory] = [(name, _meta(f"{directory.rstrip('/')}/{name}")) for name in names]
    if world.disk is not None:
        state["canary disk"] = world.disk.digest()
    return state


def _meta(path: str) -> tuple[int, int, int] | None:
    try:
        info = os.lstat(path)
    except FileNotFoundError:  # removed meanwhile (a temporary file of the system)
        return None
    return info.st_mode, info.st_uid, info.st_gid


# -- planting -------------------------------------------------------------------------------------


def _clear(path: Path) -> tuple[int, int]:
    """Remove what is at ``path`` (file, link or directory); its owner (root when nothing)."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        return ROOT
    if stat.S_ISDIR(info.st_mode):
        shutil.rmtree(path)
    else:
        path.unlink()
    return info.st_uid, info.st_gid


def plant_symlink(world: World, path: str, target: str) -> None:
    where = world.at(path)
    owner = _clear(where)
    os.symlink(target, where)
    os.lchown(where, *owner)


def plant_fifo(world: World, path: str) -> None:
    where = world.at(path)
    owner = _clear(where)
    os.mkfifo(where, 0o644)
    os.chown(where, *owner)
    world.fifos.append(where)


def plant_device(world: World, path: str, *, block: bool = False) -> None:
    """A device node: ``c 1 5`` (an endless stream of zeros), or with ``block`` the canary disk."""
    where = world.at(path)
    owner = _clear(where)
    if block:
        assert world.disk is not None
        kind, rdev = stat.S_IFBLK, os.makedev(world.disk.major, world.disk.minor)
    else:
        kind, rdev = stat.S_IFCHR, os.makedev(1, 5)
    os.mknod(where, kind | 0o666, rdev)
    os.chown(where, *owner)


def plant_huge(world: World, path: str) -> None:
    """The file (its text kept) made sparse 100 GB: what it holds at the end is zeros."""
    where = world.at(path)
    text = where.read_bytes() if where.is_file() and not where.is_symlink() else b"a file\n"
    owner = _clear(where)
    fd = os.open(where, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(text)
        handle.truncate(HUGE)
    os.chown(where, *owner)


def plant_hard_link(world: World, path: str, to: str) -> None:
    where = world.at(path)
    _clear(where)
    os.link(world.at(to), where)


def ups(path: str) -> str:
    """Enough ``../`` to climb from ``path`` out of the guest and of every directory above it."""
    return "../" * (path.count("/") + 16)


# -- planted programs -----------------------------------------------------------------------------


def planted_program(*, targets: Iterable[str], device: str | None) -> str:
    """A shell script standing in for a guest tool: it tries to write each of ``targets``
    (paths of this machine) through every way out of a chroot it knows, and ``device`` (a
    device node in the guest of a disk only the rescue has), tries chroot, mount and mknod,
    then behaves like the tool it replaced (``<itself>.real`` when there is one). (The lab's
    ``hostile`` scenario plants its own, which leaves the guest's own boot alone.)
    """
    writes = "".join(
        f"for way in /proc/1/root /proc/*/root /proc/1/cwd/.. /proc/self/root/.. /..; do\n"
        f'    echo owned 2>/dev/null >> "$way{target}" && echo "ESCAPED $way{target}"\n'
        f"done\n"
        for target in targets
    )
    disk = f'echo owned 2>/dev/null > "{device}" && echo "WROTE-DISK {device}"\n' if device else ""
    return f"""#!/bin/sh
# planted by a hostile guest: cloudrescue runs this as the guest's own tool
{writes}{disk}mkdir -p /.jail 2>/dev/null
chroot /.jail /bin/true 2>/dev/null && echo CHROOT-ESCAPE
mount -t tmpfs owned /mnt 2>/dev/null && echo MOUNTED
mknod /dev/owned b 8 0 2>/dev/null && echo MKNOD
rmdir /.jail 2>/dev/null
if [ -x "$0.real" ]; then exec "$0.real" "$@"; fi
exit 0
"""


def plant_program(world: World, path: str, script: str, *, keep_real: bool = True) -> None:
    """Replace the guest's ``path`` with ``script``, the real one kept as ``<path>.real``."""
    where = world.at(path)
    if where.exists() and not where.is_symlink() and keep_real:
        os.rename(where, where.with_name(where.name + ".real"))
    elif where.exists() or where.is_symlink():
        where.unlink()
    where.parent.mkdir(parents=True, exist_ok=True)
    where.write_text(script)
    where.chmod(0o755)


# -- the cases ------------------------------------------------------------------------------------

ALL_GUEST = GUEST_PLAYBOOKS
SSHD_READERS = ("fix-sshd-config", "reset-password", "fix-ssh-keys", "fix-firewall")

# Files a playbook writes or reads -> the playbooks that touch them.
FILES: dict[str, tuple[str, ...]] = {
    "/home/debian/.ssh/authorized_keys": ("fix-ssh-keys",),
    "/etc/ssh/sshd_config": SSHD_READERS,
    "/etc/ssh/sshd_config.d/50-cloud-init.conf": ("fix-sshd-config", "reset-password"),
    "/etc/fstab": ("fix-fstab",),
    "/etc/shadow": ("reset-password",),
    "/etc/passwd": ("reset-password", "fix-ssh-keys"),
    "/etc/sudoers": ("fix-sudoers",),
    "/etc/sudoers.d/90-cloud-init-users": ("fix-sudoers",),
    "/etc/iptables/rules.v4": ("fix-firewall",),
    "/etc/nftables.conf": ("fix-firewall",),
    "/etc/default/grub": ("enable-serial-console",),
    "/var/log/syslog": ("disk-full", "collect-logs"),
    "/var/log/syslog.1": ("disk-full", "collect-logs"),
    "/var/cache/apt/archives/old_1.0_amd64.deb": ("disk-full",),
    "/etc/netplan/50-cloud-init.yaml": ("fix-network",),
    "/etc/network/interfaces": ("fix-network",),
    "/etc/NetworkManager/system-connections/eth0.nmconnection": ("fix-network",),
    "/etc/sysconfig/network-scripts/ifcfg-eth0": ("fix-network",),
    "/etc/udev/rules.d/70-persistent-net.rules": ("fix-network",),
    "/etc/cloud/cloud.cfg.d/99-disable-network-config.cfg": ("fix-network",),
    "/etc/selinux/config": ("selinux-relabel", "fix-fstab"),
    "/.autorelabel": ("selinux-relabel",),
    "/var/lib/cloud/instance": ("reset-cloud-init",),
    "/etc/cloud/cloud-init.disabled": ("reset-cloud-init",),
}
DEVICE_PATHS = (
    "/home/debian/.ssh/authorized_keys",
    "/etc/ssh/sshd_config",
    "/etc/fstab",
    "/etc/shadow",
    "/etc/sudoers.d/90-cloud-init-users",
    "/etc/default/grub",
    "/var/log/syslog.1",
    "/etc/netplan/50-cloud-init.yaml",
    "/var/lib/cloud/instance",
)
# Directories on the way to them -> the playbooks that touch them.
DIRECTORIES: dict[str, tuple[str, ...]] = {
    "/home/debian/.ssh": ("fix-ssh-keys",),
    "/home/debian": ("fix-ssh-keys",),
    "/etc/ssh": SSHD_READERS,
    "/etc/ssh/sshd_config.d": ("fix-sshd-config", "reset-password"),
    "/etc/sudoers.d": ("fix-sudoers",),
    "/etc/iptables": ("fix-firewall",),
    "/etc/default": ("enable-serial-console",),
    "/var/lib/cloud": ("reset-cloud-init",),
    "/var/log": ("disk-full", "collect-logs"),
    "/var/cache/apt/archives": ("disk-full",),
    "/etc/netplan": ("fix-network",),
    "/etc/network": ("fix-network",),
    "/etc/NetworkManager/system-connections": ("fix-network",),
    "/etc/cloud/cloud.cfg.d": ("fix-network",),
    "/etc/selinux": ("selinux-relabel",),
}
DOTDOT_CANARY_PATHS = (
    "/home/debian/.ssh/authorized_keys",
    "/home/debian/.ssh",
    "/etc/ssh/sshd_config",
    "/etc/ssh",
    "/etc/shadow",
    "/var/lib/cloud",
    "/var/log",
    "/var/log/syslog.1",
)
# What a link at a directory points at on this machine (and in the fake rescue).
HOST_DIR_TARGET = {"/home/debian/.ssh": "/root/.ssh", "/etc/ssh/sshd_config.d": "/etc/ssh"}
HOST_FILE_TARGET = {"/home/debian/.ssh/authorized_keys": "/root/.ssh/authorized_keys"}

HOSTILE_NAMES = {
    "newline": "evil\nname",
    "escape": "\x1b]0;owned\x07\x1b[2J\x1b[31mred",
    "markup": "[bold red]owned[/]",
    "close-tag": "[/]",
    "long": "",  # filled to NAME_MAX bytes with the directory's suffix
}
# directory -> (suffix sudo/sshd/... need, what to write, mode, the playbooks)
NAMED_DIRS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "/etc/sudoers.d": ("", "debian ALL=(ALL) NOPASSWD:ALL\n", ("fix-sudoers",)),
    "/etc/ssh/sshd_config.d": (
        ".conf",
        "PasswordAuthentcation no\n",
        ("fix-sshd-config", "reset-password"),
    ),
    "/var/lib/cloud": ("", "cloud-init state\n", ("reset-cloud-init",)),
    "/var/log": (".1", LOG_LINES, ("disk-full", "collect-logs")),
    "/var/cache/apt/archives": (".deb", "!<arch>\n", ("disk-full",)),
    "/etc/netplan": (".yaml", STATIC_NETPLAN, ("fix-network",)),
    "/etc/NetworkManager/system-connections": (".nmconnection", STATIC_KEYFILE, ("fix-network",)),
    "/etc/cloud/cloud.cfg.d": (".cfg", NO_CLOUD_NETWORK, ("fix-network",)),
    "/etc/network/interfaces.d": ("", STATIC_INTERFACES, ("fix-network",)),
}
HOSTILE_OS_RELEASE = (
    'PRETTY_NAME="[bold red]Owned[/] \x1b]0;owned\x07\x1b[2J [/] [link=http://x]os[/link]"\n'
    'NAME="[/]"\nID=debian\nID_LIKE="[bold] debian"\nVERSION_ID="12"\n'
)


@dataclass(frozen=True)
class Case:
    """One hostile thing planted in the furnished guest, and the playbooks that touch it."""

    name: str
    plant: Callable[[World], None]
    playbooks: tuple[str, ...]
    guest: GuestKind = "tree"
    needs_disk: bool = False


def _symlink_cases() -> Iterator[Case]:
    kinds: dict[str, Callable[[World, str, bool], str]] = {
        "abs-host": lambda w, path, is_dir: (
            HOST_DIR_TARGET.get(path, "/etc")
            if is_dir
            else HOST_FILE_TARGET.get(path, "/etc/shadow")
        ),
        "abs-canary": lambda w, path, is_dir: f"{w.canary}/{'dir' if is_dir else 'file'}",
        "dotdot-host": lambda w, path, is_dir: (
            ups(path) + (HOST_DIR_TARGET.get(path, "/etc") if is_dir else "/etc/shadow").lstrip("/")
        ),
        "dotdot-canary": lambda w, path, is_dir: (
            ups(path) + f"{w.canary}/{'dir' if is_dir else 'file'}".lstrip("/")
        ),
    }
    for is_dir, table in ((False, FILES), (True, DIRECTORIES)):
        for path, playbooks in table.items():
            for kind, target in kinds.items():
                if kind == "dotdot-canary" and path not in DOTDOT_CANARY_PATHS:
                    continue  # resolved like dotdot-host: a sample of the paths

                def plant(world: World, path: str = path, target: Callable[..., str] = target,
                          is_dir: bool = is_dir) -> None:  # fmt: skip
                    plant_symlink(world, path, target(world, path, is_dir))

                yield Case(f"symlink-{kind}:{path}", plant, playbooks)


def plant_block_device(world: World, path: str) -> None:
    plant_device(world, path, block=True)


def _special_file_cases() -> Iterator[Case]:
    for path, playbooks in FILES.items():
        yield Case(f"fifo:{path}", partial(plant_fifo, path=path), playbooks)
        yield Case(f"huge:{path}", partial(plant_huge, path=path), playbooks)
        if path in DEVICE_PATHS:  # GuestFS takes a device as it takes a FIFO: a sample
            yield Case(f"device-zero:{path}", partial(plant_device, path=path), playbooks)
    yield Case("fifo:/home/debian/.ssh", partial(plant_fifo, path="/home/debian/.ssh"),
               ("fix-ssh-keys",))  # fmt: skip
    yield Case("fifo:/etc/os-release", partial(plant_fifo, path="/etc/os-release"), ALL_GUEST)
    yield Case("huge:/etc/os-release", partial(plant_huge, path="/etc/os-release"), ALL_GUEST)
    yield Case(
        "device-block:/etc/fstab",
        partial(plant_block_device, path="/etc/fstab"),
        ("fix-fstab",),
        needs_disk=True,
    )


def _hard_link_cases() -> Iterator[Case]:
    links = {
        ("/home/debian/.ssh/authorized_keys", "/etc/shadow"): ("fix-ssh-keys",),
        ("/home/debian/.ssh/authorized_keys", "/root/.ssh/authorized_keys"): ("fix-ssh-keys",),
        ("/var/log/syslog.1", "/etc/shadow"): ("disk-full", "collect-logs"),
        ("/var/log/syslog", "/etc/shadow"): ("disk-full", "collect-logs"),
        ("/etc/sudoers.d/90-cloud-init-users", "/etc/shadow"): ("fix-sudoers",),
        ("/etc/fstab", "/etc/shadow"): ("fix-fstab",),
        ("/etc/ssh/sshd_config", "/etc/shadow"): SSHD_READERS,
    }
    for (path, to), playbooks in links.items():
        yield Case(f"hardlink:{path}={to}", partial(plant_hard_link, path=path, to=to), playbooks)


def long_name(suffix: str) -> str:
    return "L" * (NAME_MAX - len(suffix.encode()))


def plant_named(world: World, directory: str, label: str) -> None:
    suffix, text, _ = NAMED_DIRS[directory]
    name = (HOSTILE_NAMES[label] or long_name(suffix)) + suffix
    where = anchored(world.tree, directory) / name
    where.parent.mkdir(parents=True, exist_ok=True)
    where.write_text(text)
    os.chmod(where, 0o644)


def plant_os_release(world: World) -> None:
    _write(world.tree, "/etc/os-release", HOSTILE_OS_RELEASE, 0o644, ROOT)


def _name_cases() -> Iterator[Case]:
    for directory, (_, _, playbooks) in NAMED_DIRS.items():
        for label in HOSTILE_NAMES:
            plant = partial(plant_named, directory=directory, label=label)
            yield Case(f"name-{label}:{directory}", plant, playbooks)
    yield Case("os-release-markup", plant_os_release, ALL_GUEST)
    yield Case(
        "os-release-markup@debian",
        plant_os_release,
        ("fix-sshd-config", "fix-sudoers", "fix-firewall", "reset-password"),
        guest="debian",
    )


PLANTED_PROGRAMS: dict[str, tuple[str, ...]] = {
    "/usr/sbin/sshd": ("fix-sshd-config", "reset-password"),
    "/usr/sbin/visudo": ("fix-sudoers",),
    "/usr/sbin/nft": ("fix-firewall",),
    "/usr/sbin/update-grub": ("enable-serial-console",),
    "/usr/sbin/grub-mkconfig": ("enable-serial-console",),
    "/usr/sbin/grubby": ("enable-serial-console",),
}
PLANTED_DEVICE = "/var/tmp/rescue-disk"


GRUB_TOOLS = ("/usr/sbin/update-grub", "/usr/sbin/grub-mkconfig", "/usr/sbin/grubby")


def plant_escaping_program(world: World, path: str) -> None:
    """``path`` becomes a program trying to reach the canary and the canary disk; then it is
    the real one, but for grub's tools (the real ones cannot find an overlay's device: these
    let the fix go through, what grub.cfg they leave is the guest's business)."""
    plant_device(world, PLANTED_DEVICE, block=True)
    targets = [f"{world.canary}/file", f"{world.canary}/escaped"]
    script = planted_program(targets=targets, device=PLANTED_DEVICE)
    plant_program(world, path, script, keep_real=path not in GRUB_TOOLS)
    if path == "/usr/sbin/grub-mkconfig":  # the fix prefers update-grub, a wrapper of it
        _clear(world.at("/usr/sbin/update-grub"))


UNUSABLE_PLANTS: dict[str, Callable[..., None]] = {
    "fifo": plant_fifo,
    "device-zero": plant_device,
    "device-block": plant_block_device,
    "huge": plant_huge,
}
# What the guest's real programs would block on, or read without end.
UNUSABLE_FOR_PROGRAMS: dict[str, tuple[str, ...]] = {
    "/boot/grub/grub.cfg": ("enable-serial-console",),  # copied aside before update-grub
    "/etc/ssh/sshd_config.d/00-hostile.conf": ("fix-sshd-config", "reset-password"),  # read first
    "/etc/ssh/sshd_config": ("fix-sshd-config", "reset-password"),
    "/etc/sudoers.d/00-hostile": ("fix-sudoers",),
    "/etc/default/grub.d/00-hostile.cfg": ("enable-serial-console",),
    "/etc/nftables.d/00-hostile.nft": ("fix-firewall",),
}


def _program_cases() -> Iterator[Case]:
    for path, playbooks in PLANTED_PROGRAMS.items():
        yield Case(
            f"planted:{path}@debian",
            partial(plant_escaping_program, path=path),
            playbooks,
            guest="debian",
            needs_disk=True,
        )
    for label, plant in UNUSABLE_PLANTS.items():
        for path, playbooks in UNUSABLE_FOR_PROGRAMS.items():
            yield Case(
                f"{label}:{path}@debian",
                partial(plant, path=path),
                playbooks,
                guest="debian",
                needs_disk=label == "device-block",
            )


def laughs(levels: int) -> str:
    """YAML anchors of nine aliases each, ``levels`` deep: a few hundred bytes that become
    9**levels strings once walked (the "billion laughs")."""
    lines = ['x-laughs-0: &l0 ["laugh", "laugh", "laugh", "laugh", "laugh", "laugh"]']
    for level in range(1, levels + 1):
        aliases = ", ".join([f"*l{level - 1}"] * 9)
        lines.append(f"x-laughs-{level}: &l{level} [{aliases}]")
    return "\n".join(lines) + "\n"


BOMB_LEVELS = 8  # 43 million strings: minutes and gigabytes to walk, a millisecond to load
DEEP = "[" * 5_000 + "]" * 5_000  # deeper than the YAML parser's recursion can go
YAML_PLANTS = {
    "/etc/netplan/50-cloud-init.yaml": (
        "network:\n  version: 2\n  ethernets:\n    eth0:\n      addresses: [192.168.100.10/24]\n"
        f"      x-more: *l{BOMB_LEVELS}\n",
        ("fix-network",),
    ),
    "/etc/cloud/cloud.cfg.d/99-disable-network-config.cfg": (
        f"network: {{config: disabled}}\nx-more: *l{BOMB_LEVELS}\n",
        ("fix-network",),
    ),
    "/etc/cloud/cloud.cfg": (
        f"system_info:\n  default_user: {{name: debian}}\n  x-more: *l{BOMB_LEVELS}\n",
        ("fix-ssh-keys",),
    ),
}
XML_BOMB = (
    '<?xml version="1.0"?>\n<!DOCTYPE zone [<!ENTITY a "laughlaughlaugh">'
    + "".join(
        f'<!ENTITY {chr(98 + level)} "' + f"&{chr(97 + level)};" * 10 + '">' for level in range(9)
    )
    + "]>\n<zone><short>&j;</short></zone>\n"
)


def plant_yaml_bomb(world: World, path: str) -> None:
    text, _ = YAML_PLANTS[path]
    _write(world.tree, path, laughs(BOMB_LEVELS) + text, 0o644, ROOT)


def plant_yaml_deep(world: World, path: str) -> None:
    _write(world.tree, path, f"network:\n  version: {DEEP}\n", 0o644, ROOT)


def plant_xml_bomb(world: World) -> None:
    """A firewalld guest whose default zone is an XML "billion laughs"."""
    _write(world.tree, "/etc/firewalld/firewalld.conf", "DefaultZone=public\n", 0o644, ROOT)
    _write(world.tree, "/etc/firewalld/zones/public.xml", XML_BOMB, 0o644, ROOT)


def _markup_language_cases() -> Iterator[Case]:
    for path, (_, playbooks) in YAML_PLANTS.items():
        yield Case(f"yaml-bomb:{path}", partial(plant_yaml_bomb, path=path), playbooks)
        if path != "/etc/cloud/cloud.cfg.d/99-disable-network-config.cfg":  # as netplan's
            yield Case(f"yaml-deep:{path}", partial(plant_yaml_deep, path=path), playbooks)
    yield Case("xml-bomb:/etc/firewalld/zones/public.xml", plant_xml_bomb, ("fix-firewall",))


CASES: tuple[Case, ...] = (
    *_symlink_cases(),
    *_special_file_cases(),
    *_hard_link_cases(),
    *_name_cases(),
    *_markup_language_cases(),
    *_program_cases(),
)


def disk_image(base: Path) -> Iterator[CanaryDisk]:
    """A ``CanaryDisk`` (a loop device over 1 MiB of a known pattern) for as long as needed."""
    image = base / "canary-disk.img"
    image.write_bytes(CANARY_DISK)
    device = subprocess.run(
        ["losetup", "--find", "--show", str(image)], check=True, capture_output=True, text=True
    ).stdout.strip()
    try:
        rdev = os.stat(device).st_rdev
        yield CanaryDisk(image, device, os.major(rdev), os.minor(rdev))
    finally:
        subprocess.run(["losetup", "-d", device], check=False)
