"""reset_password on Debian- and RHEL-shaped trees, hashes checked with libxcrypt."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from cloudrescue.errors import InvalidInputError
from cloudrescue.fixes.passwords import hash_method, reset_password, verify

from .conftest import guest_fs, guest_on, tree_digest, write_tree

DAY = 86400
PASSWD = "root:x:0:0:root:/root:/bin/bash\ndebian:x:1000:1000::/home/debian:/bin/bash\n"
LOCKED_SHADOW = (
    "root:!$6$old$Qy1rZ0nQ:19000:0:99999:7:::\n"
    "debian:!:0:0:99999:7::19001:\n"
    "daemon:*:19000:0:99999:7:::\n"
)
DEBIAN_FILES = {
    "etc/passwd": PASSWD,
    "etc/login.defs": "ENCRYPT_METHOD SHA512\n",
    "etc/pam.d/common-password": (
        "password\t[success=1 default=ignore]\tpam_unix.so obscure yescrypt\n"
    ),
}
RHEL_FILES = {
    "etc/passwd": PASSWD,
    "etc/login.defs": "ENCRYPT_METHOD SHA512\n",
    "etc/pam.d/system-auth": "password    sufficient    pam_unix.so sha512 shadow use_authtok\n",
    "etc/selinux/config": "SELINUX=enforcing\nSELINUXTYPE=targeted\n",
}


def make(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "g"
    write_tree(root, files)
    shadow = root / "etc/shadow"
    shadow.write_text(LOCKED_SHADOW)
    shadow.chmod(0o640)
    os.chown(shadow, 0, 42)
    return root


def shadow_fields(root: Path, user: str) -> list[str]:
    for line in (root / "etc/shadow").read_text().splitlines():
        if line.startswith(user + ":"):
            return line.split(":")
    raise AssertionError(user)


@pytest.mark.parametrize(
    ("files", "prefix"), [(DEBIAN_FILES, "$y$"), (RHEL_FILES, "$6$")], ids=["debian", "rhel"]
)
@pytest.mark.parametrize("user", ["root", "debian"])
def test_reset_unlocks_unexpires_and_is_idempotent(
    tmp_path: Path, files: dict[str, str], prefix: str, user: str
) -> None:
    root = make(tmp_path, files)
    guest = guest_on(root)
    changes = reset_password(guest, user, "n3w pass")
    assert changes[0].path == "/etc/shadow" and "n3w" not in changes[0].diff
    fields = shadow_fields(root, user)
    assert fields[1].startswith(prefix) and verify(b"n3w pass", fields[1])
    assert not verify(b"other", fields[1])
    assert fields[2] == str(int(time.time()) // DAY) and fields[7] == ""
    assert shadow_fields(root, "daemon")[1] == "*"  # other accounts untouched
    info = (root / "etc/shadow").stat()
    assert (info.st_mode & 0o777, info.st_uid, info.st_gid) == (0o640, 0, 42)
    assert list((root / "etc").glob("shadow.cloudrescue-T*"))
    if "etc/selinux/config" in files:
        assert (root / ".autorelabel").exists()
    assert reset_password(guest, user, "n3w pass") == []
    assert reset_password(guest, user, "another") != []


def test_dry_run_writes_nothing_and_shows_no_secret(tmp_path: Path) -> None:
    root = make(tmp_path, DEBIAN_FILES)
    before = tree_digest(root)
    changes = reset_password(guest_on(root, dry_run=True), "root", "s3cret")
    assert [c.kind for c in changes] == ["modify"]
    assert "s3cret" not in changes[0].diff and "$" not in changes[0].diff
    assert tree_digest(root) == before


def test_unknown_user_and_bad_password_are_refused(tmp_path: Path) -> None:
    guest = guest_on(make(tmp_path, DEBIAN_FILES))
    with pytest.raises(InvalidInputError, match="no user 'nobody'"):
        reset_password(guest, "nobody", "x")
    with pytest.raises(InvalidInputError):
        reset_password(guest, "root", "")


def test_hash_method_follows_pam_then_login_defs(tmp_path: Path) -> None:
    root = tmp_path / "g"
    write_tree(root, {"etc/login.defs": "# ENCRYPT_METHOD SHA512\nENCRYPT_METHOD YESCRYPT\n"})
    assert hash_method(guest_fs(root)) == "yescrypt"
    write_tree(root, {"etc/pam.d/common-password": "password required pam_unix.so sha512\n"})
    assert hash_method(guest_fs(root)) == "sha512"
    (root / "etc/login.defs").unlink()
    (root / "etc/pam.d/common-password").unlink()
    assert hash_method(guest_fs(root)) == "sha512"


def test_passwd_field_is_pointed_at_shadow(tmp_path: Path) -> None:
    root = make(tmp_path, DEBIAN_FILES)
    (root / "etc/passwd").write_text(PASSWD.replace("root:x:", "root::"))
    reset_password(guest_on(root), "root", "pw")
    assert (root / "etc/passwd").read_text() == PASSWD
