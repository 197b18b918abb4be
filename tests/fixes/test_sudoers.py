"""repair_sudoers with the guest's own visudo (chrooted lab guest)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from cloudrescue.fixes.common import MARKER
from cloudrescue.fixes.sudoers import repair_sudoers, syntax_errors
from cloudrescue.guest import Guest

from .conftest import guest_fs, guest_on, mounted_guest, tree_digest


def test_broken_sudoers_repaired(chroot_guest: Path) -> None:
    root = chroot_guest
    bad = root / "etc/sudoers.d/91-bad"
    bad.write_text("debian ALL=(ALL NOPASSWD:ALL\n")
    (root / "etc/sudoers.d/90-cloud-init-users").chmod(0o666)
    main = root / "etc/sudoers"
    main.write_text(main.read_text() + "foo bar baz\n")
    before = tree_digest(root)
    planned = repair_sudoers(guest_on(root, dry_run=True))
    assert tree_digest(root) == before
    assert {c.kind for c in planned} == {"chmod", "remove", "modify"}

    guest = guest_fs(root)
    repair_sudoers(Guest(guest, mounted_guest(root)))
    assert not bad.exists() and (root / "etc/sudoers.d/91-bad.cloudrescue-T").exists()
    assert f"{MARKER} visudo syntax error: foo bar baz" in main.read_text()
    assert (root / "etc/sudoers.d/90-cloud-init-users").stat().st_mode & 0o777 == 0o440
    check = subprocess.run(["chroot", str(root), "visudo", "-c"], capture_output=True, check=False)
    assert check.returncode == 0, check.stdout
    assert repair_sudoers(Guest(guest, mounted_guest(root))) == []


def test_visudo_messages() -> None:
    output = (
        "/etc/sudoers.d/bad:1:17: syntax error\n>>> /etc/sudoers: syntax error near line 5 <<<\n"
        "parse error in /etc/sudoers.d/x near line 2\n"
    )
    assert syntax_errors(output) == [
        ("/etc/sudoers.d/bad", 1),
        ("/etc/sudoers", 5),
        ("/etc/sudoers.d/x", 2),
    ]
