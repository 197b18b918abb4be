"""GuestFS against a real directory tree on this machine (LocalHost is a real Host)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cloudrescue.errors import ConnectionFailedError, InvalidInputError
from cloudrescue.guestfs import GuestFS, GuestPathError
from cloudrescue.remote.local import LocalHost

PASSWD = "root:x:0:0:root:/root:/bin/bash\ndebian:x:1000:1000:Debian:/home/debian:/bin/bash\n"


@pytest.fixture
def guest(tmp_path: Path) -> GuestFS:
    root = tmp_path / "guest"
    for directory in ("etc", "root/.ssh", "home/debian", "proc"):
        (root / directory).mkdir(parents=True)
    (root / "etc/passwd").write_text(PASSWD)
    (root / "etc/group").write_text("root:x:0:\ndebian:x:1000:\n")
    return GuestFS(LocalHost(), str(root), stamp=lambda: "20260101T000000Z")


def test_absolute_symlink_resolves_inside_the_guest(guest: GuestFS, tmp_path: Path) -> None:
    os.symlink("/root/.ssh", f"{guest.root}/home/debian/.ssh")
    resolved = guest.resolve("/home/debian/.ssh/authorized_keys")
    assert resolved.guest == "/root/.ssh/authorized_keys"
    assert resolved.host == f"{guest.root}/root/.ssh/authorized_keys"


def test_dotdot_is_clamped_at_the_guest_root(guest: GuestFS) -> None:
    os.symlink("../../../../../../../etc", f"{guest.root}/home/debian/escape")
    assert guest.resolve("/home/debian/escape/passwd").guest == "/etc/passwd"
    assert guest.resolve("/../../etc/passwd").host == f"{guest.root}/etc/passwd"


def test_write_through_hostile_symlink_stays_in_guest(guest: GuestFS, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    # A link whose target is the host path of a directory outside the guest root.
    os.symlink(str(outside), f"{guest.root}/home/debian/.ssh")
    with pytest.raises(GuestPathError):
        # str(outside) re-rooted inside the guest does not exist there: no parent, refused.
        guest.write_file("/home/debian/.ssh/authorized_keys", b"key\n", mode=0o600)
    assert list(outside.iterdir()) == []


def test_symlink_loop_is_an_error(guest: GuestFS) -> None:
    os.symlink("/etc/b", f"{guest.root}/etc/a")
    os.symlink("/etc/a", f"{guest.root}/etc/b")
    with pytest.raises(GuestPathError, match="too many levels"):
        guest.resolve("/etc/a")


def test_relative_path_is_refused(guest: GuestFS) -> None:
    with pytest.raises(InvalidInputError):
        guest.resolve("etc/passwd")


def test_writes_into_pseudo_filesystems_are_refused(guest: GuestFS) -> None:
    os.symlink("/proc/self", f"{guest.root}/etc/trap")
    with pytest.raises(GuestPathError, match="/proc"):
        guest.write_file("/etc/trap/x", b"", mode=0o644)


def test_atomic_write_backs_up_and_sets_guest_owner(guest: GuestFS) -> None:
    target = Path(guest.root, "home/debian/notes")
    target.write_text("old\n")
    target.chmod(0o640)
    user = guest.user("debian")
    changes = guest.write_file(
        "/home/debian/notes", b"new\n", mode=0o600, owner=(user.uid, user.gid)
    )
    assert [c.kind for c in changes] == ["modify"]
    assert target.read_text() == "new\n"
    stat = target.stat()
    assert (stat.st_uid, stat.st_gid, stat.st_mode & 0o777) == (1000, 1000, 0o600)
    backup = Path(f"{target}.cloudrescue-20260101T000000Z")
    assert backup.read_text() == "old\n"
    assert backup.stat().st_mode & 0o777 == 0o640
    assert not [p for p in target.parent.iterdir() if "tmp" in p.name]


def test_second_identical_write_changes_nothing(guest: GuestFS) -> None:
    first = guest.write_file("/etc/motd", b"hello\n", mode=0o644, owner=(0, 0))
    second = guest.write_file("/etc/motd", b"hello\n", mode=0o644, owner=(0, 0))
    assert [c.kind for c in first] == ["create"] and second == []


def test_metadata_only_change_is_reported(guest: GuestFS) -> None:
    Path(guest.root, "etc/motd").write_text("x")
    Path(guest.root, "etc/motd").chmod(0o666)
    changes = guest.write_file("/etc/motd", b"x", mode=0o644, owner=(0, 0))
    assert [c.kind for c in changes] == ["chmod"]


def test_backups_never_overwrite_each_other(guest: GuestFS) -> None:
    guest.write_file("/etc/motd", b"1", mode=0o644)
    guest.write_file("/etc/motd", b"2", mode=0o644)
    guest.write_file("/etc/motd", b"3", mode=0o644)
    backups = sorted(p.name for p in Path(guest.root, "etc").iterdir() if "cloudrescue" in p.name)
    assert backups == ["motd.cloudrescue-20260101T000000Z", "motd.cloudrescue-20260101T000000Z-1"]


def test_rollback_restores_everything(guest: GuestFS) -> None:
    Path(guest.root, "etc/hostname").write_text("before\n")
    guest.write_file("/etc/hostname", b"after\n", mode=0o644)
    guest.ensure_dir("/home/debian/.ssh", mode=0o700, owner=(1000, 1000))
    guest.write_file("/home/debian/.ssh/authorized_keys", b"k\n", mode=0o600, owner=(1000, 1000))
    restored = guest.rollback().restored
    assert len(restored) == 3
    assert Path(guest.root, "etc/hostname").read_text() == "before\n"
    assert not Path(guest.root, "home/debian/.ssh").exists()
    assert sorted(p.name for p in Path(guest.root, "etc").iterdir()) == [
        "group",
        "hostname",
        "passwd",
    ]


def test_a_file_a_guest_tool_rewrites_is_backed_up_and_rolled_back(guest: GuestFS) -> None:
    config, fresh = Path(guest.root, "etc/tool.cfg"), Path(guest.root, "etc/new.cfg")
    config.write_text("old\n")
    kept = guest.before_rewrite("/etc/tool.cfg", "regenerated /etc/tool.cfg")
    made = guest.before_rewrite("/etc/new.cfg", "generated /etc/new.cfg")
    assert kept.backup and Path(kept.backup).read_text() == "old\n"
    assert (kept.kind, made.kind, made.backup) == ("modify", "create", None)
    config.write_text("rewritten by the tool\n")  # what grub-mkconfig does in place
    fresh.write_text("made by the tool\n")
    assert len(guest.rollback().restored) == 2
    assert config.read_text() == "old\n" and not fresh.exists()
    assert sorted(p.name for p in Path(guest.root, "etc").iterdir()) == [
        "group",
        "passwd",
        "tool.cfg",
    ]


def test_unknown_guest_user(guest: GuestFS) -> None:
    with pytest.raises(InvalidInputError, match="no user 'nobody2'"):
        guest.user("nobody2")


def test_selinux_relabel_only_on_selinux_guests(guest: GuestFS) -> None:
    assert guest.request_selinux_relabel() == []
    Path(guest.root, "etc/selinux").mkdir()
    Path(guest.root, "etc/selinux/config").write_text("SELINUX=enforcing\nSELINUXTYPE=targeted\n")
    assert [c.kind for c in guest.request_selinux_relabel()] == ["create"]
    assert Path(guest.root, ".autorelabel").exists()
    assert guest.request_selinux_relabel() == []


def test_dot_ssh_linked_to_root_writes_the_guests_root(guest: GuestFS) -> None:
    os.symlink("/root/.ssh", f"{guest.root}/home/debian/.ssh")
    host_root_ssh = Path("/root/.ssh/authorized_keys")
    before = host_root_ssh.read_bytes() if host_root_ssh.exists() else None
    guest.write_file("/home/debian/.ssh/authorized_keys", b"ssh-ed25519 AAAA k\n", mode=0o600)
    assert Path(guest.root, "root/.ssh/authorized_keys").read_bytes() == b"ssh-ed25519 AAAA k\n"
    after = host_root_ssh.read_bytes() if host_root_ssh.exists() else None
    assert before == after


class CutDuringFsync(LocalHost):
    """A host whose connection is cut once, between writing the new content's temporary file
    and syncing it (a fake: a real cut cannot be timed between two calls of a local host)."""

    def __init__(self) -> None:
        super().__init__()
        self.cut = False

    def fsync(self, path: str) -> None:
        if not self.cut and ".cloudrescue-tmp-" in path:
            self.cut = True
            raise ConnectionFailedError("the SSH connection was lost")
        super().fsync(path)


def test_a_write_cut_midway_leaves_no_temporary_after_rollback(tmp_path: Path) -> None:
    root = tmp_path / "guest"
    (root / "etc").mkdir(parents=True)
    (root / "etc/hostname").write_text("before\n")
    guest = GuestFS(CutDuringFsync(), str(root), stamp=lambda: "20260101T000000Z")
    with pytest.raises(ConnectionFailedError):
        guest.write_file("/etc/hostname", b"after\n", mode=0o644)
    assert any(".cloudrescue-tmp-" in p.name for p in (root / "etc").iterdir())
    done = guest.rollback()
    assert done.failed == []
    assert [p.name for p in (root / "etc").iterdir()] == ["hostname"]
    assert (root / "etc/hostname").read_text() == "before\n"
