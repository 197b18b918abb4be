"""Guest-shaped directory trees on this machine, driven through LocalHost + GuestFS."""

from __future__ import annotations

import base64
import hashlib
import os
import struct
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from cloudrescue.guest import Guest
from cloudrescue.guestfs import GuestFS
from cloudrescue.phase import Phase
from cloudrescue.playbook.engine import StepsResult, run_steps
from cloudrescue.playbook.params import resolve
from cloudrescue.playbook.paramtypes import Secret
from cloudrescue.playbook.schema import ParameterSpec, Playbook, load_text
from cloudrescue.remote.local import LocalHost
from tests.guests import mounted_guest

PASSWD = (
    "root:x:0:0:root:/root:/bin/bash\n"
    "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
    "debian:x:1000:1000:Debian:/home/debian:/bin/bash\n"
)
GROUP = "root:x:0:\ndaemon:x:1:\nadm:x:4:debian\ndebian:x:1000:\n"
SHADOW = "root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\ndebian:!:19000:0:99999:7:::\n"
OS_RELEASE = 'PRETTY_NAME="Debian GNU/Linux 12"\nID=debian\nVERSION_ID="12"\n'
SSHD_CONFIG = "Include /etc/ssh/sshd_config.d/*.conf\nPort 22\n#PermitRootLogin yes\n"
FSTAB = "UUID=1111 / ext4 defaults 0 1\nUUID=2222 /data ext4 defaults 0 2\n"
Snapshot = dict[str, tuple[int, int, int, str]]


def build_guest(root: Path) -> None:
    """A small Debian-like root filesystem."""
    for directory in (
        "etc/ssh/sshd_config.d",
        "etc/systemd/system/multi-user.target.wants",
        "lib/systemd/system",
        "home/debian",
        "root",
        "proc",
        "dev",
        "run",
        "tmp",
    ):
        (root / directory).mkdir(parents=True, exist_ok=True)
    files = {
        "etc/passwd": PASSWD,
        "etc/group": GROUP,
        "etc/os-release": OS_RELEASE,
        "etc/ssh/sshd_config": SSHD_CONFIG,
        "etc/fstab": FSTAB,
        "etc/hostname": "guest\n",
        "lib/systemd/system/ssh.service": "[Service]\nExecStart=/usr/sbin/sshd -D\n",
    }
    for name, text in files.items():
        (root / name).write_text(text)
    (root / "etc/shadow").write_text(SHADOW)
    (root / "etc/shadow").chmod(0o640)
    os.chown(root / "home/debian", 1000, 1000)
    os.symlink(
        "/lib/systemd/system/ssh.service",
        root / "etc/systemd/system/multi-user.target.wants/ssh.service",
    )


def snapshot(root: Path) -> Snapshot:
    """Every path under ``root`` with its mode, owner and content (or link target) hash."""
    found: Snapshot = {}
    for folder, directories, names in os.walk(root):
        for name in [*directories, *names]:
            path = Path(folder, name)
            info = path.lstat()
            if path.is_symlink():
                digest = "-> " + os.readlink(path)
            elif path.is_file():
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                digest = "dir"
            found[str(path.relative_to(root))] = (info.st_mode, info.st_uid, info.st_gid, digest)
    return found


@pytest.fixture
def root(tmp_path: Path) -> Path:
    guest_root = tmp_path / "guest"
    build_guest(guest_root)
    return guest_root


def guest_at(root: Path, *, dry_run: bool = False) -> GuestFS:
    """A GuestFS on ``root`` (as ``open_phase`` makes one on the mounted disk)."""
    return GuestFS(LocalHost(), str(root), stamp=lambda: "20260101T000000Z", dry_run=dry_run)


def phase_on(files: GuestFS, address: str = "192.0.2.10") -> Phase:
    """The ``mount: root`` phase of a guest tree, as ``open_phase`` yields it."""
    guest = Guest(files, mounted_guest(Path(files.root)))
    return Phase(files.host, address, files.dry_run, root=guest.mount.filesystem, guest=guest)


def no_secret(name: str, spec: ParameterSpec) -> Secret:
    raise AssertionError(f"unexpected secret {name}")


def play(
    playbook: Playbook,
    root: Path,
    *,
    dry_run: bool = False,
    given: Mapping[str, list[str]] | None = None,
    secret: Callable[[str, ParameterSpec], Secret] = no_secret,
) -> StepsResult:
    """Run a playbook's steps on the tree at ``root``, as ``run_playbook`` would."""
    values = resolve(playbook, given or {}, secret)
    return run_steps(playbook, values, phase_on(guest_at(root, dry_run=dry_run)))


def statuses(result: StepsResult) -> list[str]:
    return [report.status for report in result.steps]


def load(text: str) -> Playbook:
    return load_text(text, "test.yaml")


def write_public_key(path: Path, comment: str = "test@example") -> str:
    """Write a (random) ed25519 public key file; returns its key line."""
    kind = b"ssh-ed25519"
    blob = struct.pack(">I", len(kind)) + kind + struct.pack(">I", 32) + os.urandom(32)
    line = f"ssh-ed25519 {base64.b64encode(blob).decode()} {comment}"
    path.write_text(line + "\n")
    return line
