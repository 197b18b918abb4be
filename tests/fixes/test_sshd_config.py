"""repair_sshd_config with the guest's own sshd (chrooted lab guest), and the fallback parser."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from cloudrescue.errors import FixFailedError
from cloudrescue.fixes.common import MARKER
from cloudrescue.fixes.sshd_config import (
    allow_password_login,
    generate_host_keys,
    parse_sshd_output,
    repair_sshd_config,
    run_sshd_check,
    ssh_ports,
    static_errors,
)
from cloudrescue.guest import Guest

from .conftest import guest_fs, guest_on, mounted_guest, tree_digest, write_tree


def break_config(root: Path) -> None:
    config = root / "etc/ssh/sshd_config"
    config.write_text(config.read_text() + "PasswordAuthentcation no\nPort\n")
    write_tree(root, {"etc/ssh/sshd_config.d/60-typo.conf": "Bad1 x\nPort 2222\n"})
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()


def test_guest_sshd_rejections_are_commented_out(chroot_guest: Path) -> None:
    root = chroot_guest
    break_config(root)
    mounted = mounted_guest(root)
    before = tree_digest(root)
    planned = repair_sshd_config(Guest(guest_fs(root, dry_run=True), mounted))
    assert tree_digest(root) == before
    diffs = "".join(change.diff for change in planned)
    assert f"+{MARKER}" in diffs and "PasswordAuthentcation" in diffs and "Bad1" in diffs

    guest = guest_fs(root)
    changes = repair_sshd_config(Guest(guest, mounted))
    assert {c.path for c in changes} >= {
        "/etc/ssh/sshd_config",
        "/etc/ssh/sshd_config.d/60-typo.conf",
    }
    assert run_sshd_check(guest).errors == ()
    assert list((root / "etc/ssh").glob("ssh_host_ed25519_key"))
    main = (root / "etc/ssh/sshd_config").read_text()
    assert f"{MARKER} sshd rejected this line" in main and "\nPort\n" not in main
    assert "Port 2222" in (root / "etc/ssh/sshd_config.d/60-typo.conf").read_text()
    assert ssh_ports(guest) == [2222]
    if (root / "etc/redhat-release").exists():
        assert (root / "var/empty/sshd").is_dir()
    assert repair_sshd_config(Guest(guest, mounted)) == []


def test_default_mode_restores_the_packaged_config(chroot_guest: Path) -> None:
    root = chroot_guest
    (root / "etc/ssh/sshd_config").write_text("Port\nNonsense yes\n")
    guest = guest_fs(root)
    changes = repair_sshd_config(Guest(guest, mounted_guest(root)), mode="default")
    assert changes[0].path == "/etc/ssh/sshd_config"
    assert "Nonsense" not in (root / "etc/ssh/sshd_config").read_text()
    assert run_sshd_check(guest).errors == ()
    assert repair_sshd_config(Guest(guest, mounted_guest(root)), mode="default") == []


def test_fallback_parser_when_the_guest_has_no_sshd(tmp_path: Path) -> None:
    root = tmp_path / "g"
    write_tree(
        root,
        {
            "etc/os-release": "ID=debian\n",
            "etc/ssh/sshd_config": (
                "Include /etc/ssh/sshd_config.d/*.conf\n# Port 1\nPort 22\n"
                "ListenAddress 0.0.0.0:2200\nUsePAM\nFrobnicate yes\n"
                "Match User x\n  Port 99\n"
            ),
            "etc/ssh/sshd_config.d/a.conf": "PermitRootLogin no\nPubkeyAuthentcation yes\n",
        },
    )
    guest = guest_fs(root)
    assert ssh_ports(guest) == [22, 2200]
    changes = repair_sshd_config(Guest(guest, mounted_guest(root)))
    main = (root / "etc/ssh/sshd_config").read_text()
    assert f"{MARKER} sshd rejected this line (missing argument.): UsePAM" in main
    assert "Frobnicate" in main and "\nFrobnicate" not in main
    assert "\nPubkeyAuthentcation" not in (root / "etc/ssh/sshd_config.d/a.conf").read_text()
    assert any(c.path.startswith("/etc/ssh/ssh_host_") for c in changes)  # rescue's ssh-keygen
    assert repair_sshd_config(Guest(guest, mounted_guest(root))) == []


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        (
            "/etc/ssh/sshd_config.d/x.conf: line 1: Bad configuration option: Bad1\n"
            "/etc/ssh/sshd_config.d/x.conf: terminating, 1 bad configuration options\n",
            [("/etc/ssh/sshd_config.d/x.conf", 1)],
        ),
        ("/etc/ssh/sshd_config line 7: missing argument.\n", [("/etc/ssh/sshd_config", 7)]),
        ("Missing privilege separation directory: /run/sshd\n", []),
    ],
)
def test_sshd_messages_are_parsed(output: str, expected: list[tuple[str, int]]) -> None:
    errors, _, privsep = parse_sshd_output(output)
    assert [(e.path, e.line) for e in errors] == expected
    assert (privsep == "/run/sshd") == ("privilege" in output)


def test_static_errors_only_flag_what_any_sshd_rejects() -> None:
    files = {"/c": "port 22\nKexAlgorithms=+diffie-hellman-group1-sha1\nBogus 1\n\n# x\n"}
    assert [(e.line, e.message) for e in static_errors(files)] == [
        (3, "Bad configuration option: Bogus")
    ]


def sshd_can_judge(root: Path) -> None:
    """Host keys and the privsep directory, so the guest's ``sshd -T`` runs chrooted."""
    subprocess.run(["chroot", str(root), "ssh-keygen", "-A"], check=True, capture_output=True)
    (root / "run/sshd").mkdir(parents=True, exist_ok=True)


def test_password_login_drop_in_is_checked_by_the_guest_sshd(chroot_guest: Path) -> None:
    root = chroot_guest
    sshd_can_judge(root)
    before = tree_digest(root)
    planned = allow_password_login(guest_on(root, dry_run=True), "root")
    assert tree_digest(root) == before
    assert "+Match User root" in planned[0].diff and "PermitRootLogin yes" in planned[0].diff
    guest = guest_fs(root)
    changes = allow_password_login(Guest(guest, mounted_guest(root)), "root")
    assert changes[0].path == "/etc/ssh/sshd_config.d/05-cloudrescue-password-root.conf"
    assert run_sshd_check(guest).ok
    assert allow_password_login(Guest(guest, mounted_guest(root)), "root") == []


def test_password_login_without_include_goes_to_the_end(chroot_guest: Path) -> None:
    root = chroot_guest
    sshd_can_judge(root)
    config = root / "etc/ssh/sshd_config"
    config.write_text("PasswordAuthentication no\nUsePAM yes\n")
    user = "debian" if (root / "home/debian").exists() else "cloud-user"
    allow_password_login(guest_on(root), user)
    assert config.read_text().startswith("PasswordAuthentication no\nUsePAM yes\nMatch User ")
    assert not list((root / "etc/ssh/sshd_config.d").glob("*cloudrescue*"))


def test_password_login_still_refused_fails(chroot_guest: Path) -> None:
    root = chroot_guest
    sshd_can_judge(root)
    write_tree(
        root, {"etc/ssh/sshd_config.d/01-deny.conf": "Match all\n PasswordAuthentication no\n"}
    )
    with pytest.raises(FixFailedError, match="still refuses password logins for root"):
        allow_password_login(guest_on(root), "root")


def test_host_keys_never_go_through_a_guest_link(tmp_path: Path) -> None:
    """A guest whose /etc/ssh points elsewhere: the keys land inside the guest, and only the
    guest; the rescue (this machine) gets none."""
    root = tmp_path / "guest"
    write_tree(root, {"elsewhere/sshd_config": "Port 22\n", "etc/group": "root:x:0:\n"})
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(str(outside), root / "etc/ssh")  # absolute: on the rescue it would lead out
    (root / str(outside).lstrip("/")).mkdir(parents=True)
    changes = generate_host_keys(guest_fs(root))
    inside = sorted(p.name for p in (root / str(outside).lstrip("/")).iterdir())
    assert "ssh_host_ed25519_key" in inside and "ssh_host_ed25519_key.pub" in inside
    assert list(outside.iterdir()) == []
    assert all(change.kind == "create" for change in changes)
    assert all(change.diff.endswith("(not shown)\n") for change in changes)
    key = root / str(outside).lstrip("/") / "ssh_host_ed25519_key"
    assert key.stat().st_mode & 0o777 == 0o600
    assert generate_host_keys(guest_fs(root)) == []
