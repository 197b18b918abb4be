"""GuestFS against a guest that works against us: links planted by a user, set-id files,
changes that cannot all be undone. (Root: files are given to the guest's uid 1000.)"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from cloudrescue.fixes.common import delete_file, make_symlink, move_aside, remove_symlink
from cloudrescue.guestfs import Change, GuestFS, GuestPathError
from cloudrescue.remote.local import LocalHost

pytestmark = pytest.mark.root
USER = (1000, 1000)


@pytest.fixture
def guest(tmp_path: Path) -> GuestFS:
    if os.geteuid() != 0:
        pytest.skip("needs root (files given to uid 1000)")
    root = tmp_path / "guest"
    for directory in ("etc", "home/debian/.ssh", "proc", "sys", "dev", "usr/bin"):
        (root / directory).mkdir(parents=True)
    (root / "etc/shadow").write_text("root:$6$secret:19000::::::\n")
    (root / "etc/shadow").chmod(0o640)
    os.chown(root / "home/debian", *USER)
    os.chown(root / "home/debian/.ssh", *USER)
    return GuestFS(LocalHost(), str(root), stamp=lambda: "T")


def owner_and_text(path: Path) -> tuple[int, int, str]:
    info = path.stat()
    return info.st_uid, info.st_gid, path.read_text()


@pytest.mark.parametrize("planted", ["/etc/shadow", "../../../etc/shadow"])
def test_a_file_given_to_a_user_never_follows_its_final_symlink(
    guest: GuestFS, planted: str
) -> None:
    root = Path(guest.root)
    keys = root / "home/debian/.ssh/authorized_keys"
    os.symlink(planted, keys)
    before = owner_and_text(root / "etc/shadow")
    changes = guest.write_file(
        "/home/debian/.ssh/authorized_keys", b"ssh-ed25519 AAAA me\n", mode=0o600, owner=USER
    )
    assert owner_and_text(root / "etc/shadow") == before
    assert not keys.is_symlink() and keys.read_text() == "ssh-ed25519 AAAA me\n"
    assert (keys.stat().st_uid, stat.S_IMODE(keys.stat().st_mode)) == (1000, 0o600)
    [backup] = (root / "home/debian/.ssh").glob("authorized_keys.cloudrescue-*")
    assert backup.is_symlink() and os.readlink(backup) == planted
    assert [change.kind for change in changes] == ["remove", "create"]
    guest.rollback()
    assert keys.is_symlink() and os.readlink(keys) == planted


def test_a_dry_run_plans_the_replacement_and_changes_nothing(guest: GuestFS) -> None:
    root = Path(guest.root)
    os.symlink("/etc/shadow", root / "home/debian/.ssh/authorized_keys")
    dry = GuestFS(LocalHost(), guest.root, stamp=lambda: "T", dry_run=True)
    changes = dry.write_file("/home/debian/.ssh/authorized_keys", b"k\n", mode=0o600, owner=USER)
    assert [change.kind for change in changes] == ["remove", "create"]
    assert os.readlink(root / "home/debian/.ssh/authorized_keys") == "/etc/shadow"


def test_a_hard_link_to_a_root_file_is_broken_not_chowned(guest: GuestFS) -> None:
    root = Path(guest.root)
    keys = root / "home/debian/.ssh/authorized_keys"
    os.link(root / "etc/shadow", keys)
    before = owner_and_text(root / "etc/shadow")
    guest.write_file(
        "/home/debian/.ssh/authorized_keys", keys.read_bytes(), mode=0o600, owner=USER
    )
    assert owner_and_text(root / "etc/shadow") == before
    assert stat.S_IMODE((root / "etc/shadow").stat().st_mode) == 0o640
    assert keys.stat().st_uid == 1000 and keys.stat().st_ino != (root / "etc/shadow").stat().st_ino


def test_chown_through_a_symlink_to_a_user_is_refused(guest: GuestFS) -> None:
    root = Path(guest.root)
    os.symlink("/etc", root / "home/debian/.config")
    with pytest.raises(GuestPathError, match=r"is a symlink .*refusing to give"):
        guest.set_metadata("/home/debian/.config", mode=0o700, owner=USER)
    with pytest.raises(GuestPathError, match="is a symlink"):
        guest.ensure_dir("/home/debian/.config", mode=0o700, owner=USER)
    assert (root / "etc").stat().st_uid == 0
    assert guest.set_metadata("/home/debian/.config", mode=0o755, owner=(0, 0)) == []


def test_backups_keep_set_id_bits(guest: GuestFS) -> None:
    root = Path(guest.root)
    tool = root / "usr/bin/tool"
    tool.write_bytes(b"old")
    tool.chmod(0o4755)
    guest.write_file("/usr/bin/tool", b"new")
    [backup] = (root / "usr/bin").glob("tool.cloudrescue-*")
    assert stat.S_IMODE(backup.stat().st_mode) == 0o4755
    assert stat.S_IMODE(tool.stat().st_mode) == 0o4755


def test_rollback_goes_on_past_what_cannot_be_undone(guest: GuestFS) -> None:
    root = Path(guest.root)
    guest.write_file("/etc/motd", b"hello\n")
    guest.write_file("/etc/shadow", b"changed\n")
    guest.changes.append(Change("create", "/etc/never-made", "a tool that failed first"))
    [backup] = (root / "etc").glob("shadow.cloudrescue-*")
    backup.unlink()  # the backup is gone: that change cannot be undone
    undone = guest.rollback()
    assert len(undone.restored) == 2
    assert [failure.split(" ")[0] for failure in undone.failed] == ["/etc/shadow"]
    assert not (root / "etc/motd").exists()
    assert guest.changes == []


def test_a_removed_symlink_comes_back_on_rollback(guest: GuestFS) -> None:
    root = Path(guest.root)
    wants = root / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True)
    os.symlink("/lib/systemd/system/ssh.service", wants / "ssh.service")
    [change] = remove_symlink(guest, "/etc/systemd/system/multi-user.target.wants/ssh.service")
    assert change.link_target == "/lib/systemd/system/ssh.service"
    assert not (wants / "ssh.service").is_symlink()
    assert guest.rollback().restored
    assert os.readlink(wants / "ssh.service") == "/lib/systemd/system/ssh.service"


@pytest.mark.parametrize("path", ["/proc/1/root", "/sys/kernel/x", "/dev/sda", "/run/x"])
def test_pseudo_filesystems_are_refused_by_every_verb(guest: GuestFS, path: str) -> None:
    for verb in (
        lambda: delete_file(guest, path, why="test"),
        lambda: move_aside(guest, path),
        lambda: make_symlink(guest, path, "/dev/null"),
        lambda: remove_symlink(guest, path),
    ):
        with pytest.raises(GuestPathError, match="refused"):
            verb()


def test_pseudo_guard_sees_through_links(guest: GuestFS) -> None:
    os.symlink("/proc", Path(guest.root, "etc/innocent"))
    with pytest.raises(GuestPathError, match="inside the guest's /proc"):
        delete_file(guest, "/etc/innocent/self/environ", why="test")
