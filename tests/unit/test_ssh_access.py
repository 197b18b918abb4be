"""restore_ssh_access on a real guest-shaped directory tree."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from cloudrescue.errors import FixFailedError
from cloudrescue.fixes.ssh_access import (
    authorized_keys_path,
    authorized_keys_paths,
    default_user,
    restore_ssh_access,
)
from cloudrescue.guestfs import GuestFS
from cloudrescue.keys import PublicKey, load_public_keys
from cloudrescue.remote.local import LocalHost
from tests.guests import guest_of

PASSWD = (
    "root:x:0:0:root:/root:/bin/bash\n"
    "admin:x:999:999::/home/admin:/bin/bash\n"
    "debian:x:1000:1000::/home/debian:/bin/bash\n"
)


def make_key(tmp_path: Path, name: str) -> PublicKey:
    path = tmp_path / name
    subprocess.run(["ssh-keygen", "-q", "-N", "", "-t", "ed25519", "-f", str(path)], check=True)
    return load_public_keys(path.with_suffix(".pub"))[0]


@pytest.fixture
def guest(tmp_path: Path) -> GuestFS:
    root = tmp_path / "g"
    for directory in ("etc/ssh", "home/debian", "home/admin", "root"):
        (root / directory).mkdir(parents=True)
    (root / "etc/passwd").write_text(PASSWD)
    (root / "etc/ssh/sshd_config").write_text("Include /etc/ssh/sshd_config.d/*.conf\n")
    os.chown(root / "home/debian", 1000, 1000)
    return GuestFS(LocalHost(), str(root), stamp=lambda: "T")


def test_default_user_prefers_cloud_init_then_known_names(guest: GuestFS) -> None:
    assert default_user(guest).name == "debian"
    Path(guest.root, "etc/cloud").mkdir()
    Path(guest.root, "etc/cloud/cloud.cfg").write_text(
        "system_info:\n  default_user:\n    name: admin\n"
    )
    assert default_user(guest).name == "admin"


def test_authorized_keys_file_setting_is_honoured(guest: GuestFS) -> None:
    user = guest.user("debian")
    assert authorized_keys_path(guest, user) == "/home/debian/.ssh/authorized_keys"
    Path(guest.root, "etc/ssh/sshd_config.d").mkdir()
    Path(guest.root, "etc/ssh/sshd_config.d/keys.conf").write_text(
        "AuthorizedKeysFile /etc/ssh/keys/%u .ssh/authorized_keys\n"
    )
    assert authorized_keys_path(guest, user) == "/etc/ssh/keys/debian"


def test_bad_perms_are_repaired_and_second_run_changes_nothing(
    guest: GuestFS, tmp_path: Path
) -> None:
    home = Path(guest.root, "home/debian")
    os.chown(home, 0, 0)
    (home / ".ssh").mkdir(mode=0o777)
    (home / ".ssh").chmod(0o777)
    key = make_key(tmp_path, "k")
    user = guest.user("debian")
    changes = restore_ssh_access(guest_of(guest), user, [key], replace=False)
    assert {c.kind for c in changes} >= {"chown", "chmod", "create"}
    assert (home.stat().st_uid, (home / ".ssh").stat().st_mode & 0o777) == (1000, 0o700)
    keys = home / ".ssh/authorized_keys"
    assert keys.read_text() == key.line + "\n"
    assert keys.stat().st_mode & 0o777 == 0o600 and keys.stat().st_uid == 1000
    assert restore_ssh_access(guest_of(guest), user, [key], replace=False) == []


def test_append_keeps_other_keys_and_replace_drops_them(guest: GuestFS, tmp_path: Path) -> None:
    old, new = make_key(tmp_path, "old"), make_key(tmp_path, "new")
    ssh = Path(guest.root, "home/debian/.ssh")
    ssh.mkdir(mode=0o700)
    os.chown(ssh, 1000, 1000)
    (ssh / "authorized_keys").write_text(f'from="10.0.0.0/8" {old.line}\n')
    user = guest.user("debian")
    restore_ssh_access(guest_of(guest), user, [new, old], replace=False)
    assert (ssh / "authorized_keys").read_text() == f'from="10.0.0.0/8" {old.line}\n{new.line}\n'
    restore_ssh_access(guest_of(guest), user, [new], replace=True)
    assert (ssh / "authorized_keys").read_text() == new.line + "\n"
    assert list(ssh.glob("authorized_keys.cloudrescue-T*"))


def test_dry_run_reports_diff_and_touches_nothing(guest: GuestFS, tmp_path: Path) -> None:
    key = make_key(tmp_path, "k")
    before = sorted(str(p) for p in Path(guest.root).rglob("*"))
    dry = GuestFS(LocalHost(), guest.root, dry_run=True)
    changes = restore_ssh_access(guest_of(dry), dry.user("debian"), [key], replace=False)
    assert [c.kind for c in changes] == ["mkdir", "create"]
    assert f"+{key.line}" in changes[1].diff
    assert sorted(str(p) for p in Path(guest.root).rglob("*")) == before


def test_dot_ssh_symlink_out_of_home_is_replaced_not_followed(
    guest: GuestFS, tmp_path: Path
) -> None:
    root_ssh = Path(guest.root, "root/.ssh")
    root_ssh.mkdir(mode=0o700)
    (root_ssh / "authorized_keys").write_text("root's key\n")
    os.symlink("/root/.ssh", f"{guest.root}/home/debian/.ssh")
    key = make_key(tmp_path, "k")
    changes = restore_ssh_access(guest_of(guest), guest.user("debian"), [key], replace=False)
    assert [c.kind for c in changes][:2] == ["remove", "mkdir"]
    assert (root_ssh / "authorized_keys").read_text() == "root's key\n"
    assert root_ssh.stat().st_uid == 0
    home_ssh = Path(guest.root, "home/debian/.ssh")
    assert home_ssh.is_dir() and not home_ssh.is_symlink()
    assert (home_ssh / "authorized_keys").read_text() == key.line + "\n"
    [backup] = Path(guest.root, "home/debian").glob(".ssh.cloudrescue-*")
    assert backup.is_symlink() and os.readlink(backup) == "/root/.ssh"


def test_dry_run_of_symlink_replacement_plans_a_fresh_directory(
    guest: GuestFS, tmp_path: Path
) -> None:
    Path(guest.root, "root/.ssh").mkdir(mode=0o700)
    os.symlink("/root/.ssh", f"{guest.root}/home/debian/.ssh")
    dry = GuestFS(LocalHost(), guest.root, dry_run=True)
    key = make_key(tmp_path, "k")
    changes = restore_ssh_access(guest_of(dry), dry.user("debian"), [key], replace=False)
    assert [c.kind for c in changes] == ["remove", "mkdir", "create"]
    assert os.readlink(f"{guest.root}/home/debian/.ssh") == "/root/.ssh"


def drop_in(guest: GuestFS, text: str, name: str = "keys.conf") -> None:
    """An sshd_config.d drop-in (the guest's sshd_config includes them all)."""
    Path(guest.root, "etc/ssh/sshd_config.d").mkdir(exist_ok=True)
    Path(guest.root, "etc/ssh/sshd_config.d", name).write_text(text)


def mode_and_owner(path: Path) -> tuple[int, int, int]:
    info = path.stat()
    return info.st_mode & 0o777, info.st_uid, info.st_gid


def test_every_path_sshd_reads_in_its_order(guest: GuestFS) -> None:
    user = guest.user("debian")
    assert authorized_keys_paths(guest, user) == [
        "/home/debian/.ssh/authorized_keys",
        "/home/debian/.ssh/authorized_keys2",
    ]  # sshd's default
    drop_in(guest, 'AuthorizedKeysFile .ssh/keys_first "%h/.ssh/with space" /srv/%u/keys\n')
    assert authorized_keys_paths(guest, user) == [
        "/home/debian/.ssh/keys_first",
        "/home/debian/.ssh/with space",
        "/srv/debian/keys",
    ]
    assert authorized_keys_path(guest, user) == "/home/debian/.ssh/keys_first"


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("/etc/ssh/keys/%u", ["/etc/ssh/keys/debian"]),
        ("%h/.ssh/k %%h/%U", ["/home/debian/.ssh/k", "/home/debian/%h/1000"]),
        ("/srv/100%%/%u_%U", ["/srv/100%/debian_1000"]),
        ("keys/%u", ["/home/debian/keys/debian"]),
        ("~/.ssh/keys ~debian/k", ["/root/.ssh/keys", "/home/debian/k"]),  # sshd runs as root
        (".ssh/a /x/%C .ssh/b", ["/home/debian/.ssh/a"]),  # sshd gives up at an unknown token
        ("none", []),
        ("NONE", []),
    ],
)
def test_tokens_are_expanded_as_sshd_does(
    guest: GuestFS, setting: str, expected: list[str]
) -> None:
    Path(guest.root, "etc/ssh/sshd_config").write_text(f"AuthorizedKeysFile {setting}\n")
    assert authorized_keys_paths(guest, guest.user("debian")) == expected


def test_several_files_the_keys_go_to_the_first(guest: GuestFS, tmp_path: Path) -> None:
    drop_in(guest, "AuthorizedKeysFile .ssh/keys_first .ssh/authorized_keys\n")
    key = make_key(tmp_path, "k")
    restore_ssh_access(guest_of(guest), guest.user("debian"), [key], replace=False)
    ssh = Path(guest.root, "home/debian/.ssh")
    assert (ssh / "keys_first").read_text() == key.line + "\n"
    assert mode_and_owner(ssh / "keys_first") == (0o600, 1000, 1000)
    assert mode_and_owner(ssh) == (0o700, 1000, 1000)
    assert not (ssh / "authorized_keys").exists()


def test_a_match_user_block_is_honoured(guest: GuestFS, tmp_path: Path) -> None:
    Path(guest.root, "etc/ssh/sshd_config").write_text(
        "Include /etc/ssh/sshd_config.d/*.conf\n"
        "AuthorizedKeysFile .ssh/authorized_keys\n"
        "Match User debian\n"
        "    AuthorizedKeysFile .ssh/debian_keys\n"
    )
    assert authorized_keys_path(guest, guest.user("admin")) == "/home/admin/.ssh/authorized_keys"
    assert authorized_keys_path(guest, guest.user("debian")) == "/home/debian/.ssh/debian_keys"
    key = make_key(tmp_path, "k")
    restore_ssh_access(guest_of(guest), guest.user("debian"), [key], replace=False)
    assert Path(guest.root, "home/debian/.ssh/debian_keys").read_text() == key.line + "\n"
    assert not Path(guest.root, "home/debian/.ssh/authorized_keys").exists()


def test_keys_outside_the_home_stay_roots(guest: GuestFS, tmp_path: Path) -> None:
    drop_in(guest, "AuthorizedKeysFile /etc/ssh/authorized_keys/%u\n", "40-keys.conf")
    home = Path(guest.root, "home/debian")
    before = mode_and_owner(home)
    key = make_key(tmp_path, "k")
    user = guest.user("debian")
    changes = restore_ssh_access(guest_of(guest), user, [key], replace=False)
    assert [(c.kind, c.path) for c in changes] == [
        ("mkdir", "/etc/ssh/authorized_keys"),
        ("create", "/etc/ssh/authorized_keys/debian"),
    ]
    keys = Path(guest.root, "etc/ssh/authorized_keys/debian")
    assert keys.read_text() == key.line + "\n"
    assert mode_and_owner(keys) == (0o644, 0, 0)
    assert mode_and_owner(keys.parent) == (0o755, 0, 0)
    assert mode_and_owner(home) == before and not (home / ".ssh").exists()
    assert restore_ssh_access(guest_of(guest), user, [key], replace=False) == []


def test_an_existing_key_file_outside_the_home_is_made_roots_again(
    guest: GuestFS, tmp_path: Path
) -> None:
    drop_in(guest, "AuthorizedKeysFile /etc/ssh/authorized_keys/%u\n")
    directory = Path(guest.root, "etc/ssh/authorized_keys")
    directory.mkdir(mode=0o777)
    directory.chmod(0o777)
    old, new = make_key(tmp_path, "old"), make_key(tmp_path, "new")
    keys = directory / "debian"
    keys.write_text(old.line + "\n")
    os.chown(keys, 1000, 1000)
    keys.chmod(0o666)
    restore_ssh_access(guest_of(guest), guest.user("debian"), [new], replace=False)
    assert keys.read_text() == f"{old.line}\n{new.line}\n"
    assert mode_and_owner(keys) == (0o644, 0, 0)
    assert mode_and_owner(directory) == (0o755, 0, 0)
    assert list(directory.glob("debian.cloudrescue-T*"))


def test_dry_run_outside_the_home_plans_a_root_directory(guest: GuestFS, tmp_path: Path) -> None:
    drop_in(guest, "AuthorizedKeysFile /etc/ssh/authorized_keys/%u\n")
    before = sorted(str(p) for p in Path(guest.root).rglob("*"))
    dry = GuestFS(LocalHost(), guest.root, dry_run=True)
    key = make_key(tmp_path, "k")
    changes = restore_ssh_access(guest_of(dry), dry.user("debian"), [key], replace=False)
    assert [(c.kind, c.path) for c in changes] == [
        ("mkdir", "/etc/ssh/authorized_keys"),
        ("create", "/etc/ssh/authorized_keys/debian"),
    ]
    assert "(mode 0644)" in changes[1].detail
    assert sorted(str(p) for p in Path(guest.root).rglob("*")) == before


def test_a_key_directory_is_made_only_where_its_parent_exists(
    guest: GuestFS, tmp_path: Path
) -> None:
    drop_in(guest, "AuthorizedKeysFile /srv/ssh/keys/%u\n")
    key = make_key(tmp_path, "k")
    with pytest.raises(FixFailedError, match="but /srv/ssh does not exist in the guest"):
        restore_ssh_access(guest_of(guest), guest.user("debian"), [key], replace=False)
    assert not Path(guest.root, "srv").exists()


def test_authorized_keys_file_none_is_refused(guest: GuestFS, tmp_path: Path) -> None:
    drop_in(guest, "AuthorizedKeysFile none\n")
    key = make_key(tmp_path, "k")
    with pytest.raises(FixFailedError, match=r"reads no authorized_keys file for debian .*none"):
        restore_ssh_access(guest_of(guest), guest.user("debian"), [key], replace=False)
