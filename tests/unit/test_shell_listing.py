"""What a shell changed (the listing and its comparison), and the rescue-side script's rules,
without root: the listing runs this machine's own ``find`` over a tree under tmp."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import pytest

from cloudrescue.errors import InvalidInputError
from cloudrescue.remote.local import LocalHost
from cloudrescue.shell import chroot
from cloudrescue.shell.changes import Entry, Listing, compare, take_listing


def tree(tmp_path: Path) -> Path:
    root = tmp_path / "guest"
    for folder in ("etc/ssh", "home/debian/.ssh", "root", "var/log"):
        (root / folder).mkdir(parents=True)
    (root / "etc/hostname").write_text("web-1\n")
    (root / "etc/ssh/sshd_config").write_text("PermitRootLogin no\n")
    (root / "home/debian/.ssh/authorized_keys").write_text("ssh-ed25519 AAAA\n")
    (root / "var/log/syslog").write_text("not watched\n")
    return root


def test_created_changed_removed_and_odd_names(tmp_path: Path) -> None:
    root = tree(tmp_path)
    odd = "etc/new\nline and space"
    before = take_listing(LocalHost(), str(root))
    assert before.complete and "/etc/hostname" in before.entries
    assert not any(path.startswith("/var/log") for path in before.entries)
    (root / "etc/hostname").write_text("web-2-longer\n")
    (root / "etc/ssh/sshd_config").chmod(0o600)
    (root / "home/debian/.ssh/authorized_keys").unlink()
    (root / odd).write_text("")
    (root / "etc/motd").symlink_to("/outside/the/guest")  # listed, never followed
    (root / "var/log/syslog").write_text("still not watched\n")
    after = take_listing(LocalHost(), str(root))
    changes = {(c.kind, c.path): c.detail for c in compare(before, after)}
    assert set(changes) == {
        ("changed", "/etc/hostname"),
        ("changed", "/etc/ssh/sshd_config"),
        ("removed", "/home/debian/.ssh/authorized_keys"),
        ("created", f"/{odd}"),
        ("created", "/etc/motd"),
    }
    assert changes[("changed", "/etc/hostname")].startswith("size 6 -> 13")
    assert "mode 644 -> 600" in changes[("changed", "/etc/ssh/sshd_config")]
    assert changes[("created", "/etc/motd")].startswith("l ")


def test_a_directory_whose_only_change_is_its_mtime_is_not_listed() -> None:
    folder = Entry("d", "755", "0:0", 4096, "1.0")
    before = Listing({"/etc": folder}, complete=True)
    after = Listing({"/etc": Entry("d", "755", "0:0", 4096, "2.0")}, complete=True)
    assert compare(before, after) == []
    moved = Listing({"/etc": Entry("d", "700", "0:0", 4096, "2.0")}, complete=True)
    assert [change.detail for change in compare(before, moved)] == ["mode 755 -> 700"]


def test_a_watched_folder_that_is_a_symlink_is_listed_not_followed(tmp_path: Path) -> None:
    root = tree(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("x")
    os.symlink(str(outside), root / "boot")
    listing = take_listing(LocalHost(), str(root))
    assert listing.entries["/boot"].kind == "l"
    assert not any("secret" in path for path in listing.entries)


def test_run_ids_name_stages_and_nothing_else() -> None:
    assert chroot.stage_name("0123456789ab") == "cloudrescue-0123456789ab"
    for bad in ("../etc", "abc def", "", "ABCDEF012345"):
        with pytest.raises(InvalidInputError):
            chroot.stage_name(bad)


def test_the_start_script_keeps_the_shell_status_and_quotes_the_root() -> None:
    stage = chroot.ShellStage("cloudrescue-0123456789ab", "/mnt/a b", chroot=False)
    script = chroot.start_script(stage, "command")
    assert script.rstrip().endswith("exit $status")
    argv = shlex.split(script.splitlines()[3])
    assert argv[:2] == ["sh", "-c"] and argv[2].startswith("cd '/mnt/a b' && exec")
    sandboxed = chroot.start_script(chroot.ShellStage(stage.name, "/mnt", True), "login")
    argv = shlex.split(sandboxed.splitlines()[3])
    assert argv[:6] == ["unshare", "--mount", "--pid", "--fork", "--kill-child", "--ipc"]
    assert argv[-3:-1] == ["/bin/sh", "-c"] and "/bin/bash -l" in argv[-1]
    assert stage.attach_command(True).startswith("tmux -L cloudrescue -f ")
    assert stage.attach_command(False) == f"sh {stage.directory}/start"


def test_the_shell_keeps_file_capabilities_only() -> None:
    kept = set(chroot.SHELL_CAPABILITIES.split(","))
    assert {"chown", "dac_override", "fowner", "setuid", "setgid"} <= kept
    assert kept.isdisjoint({"sys_admin", "sys_module", "sys_rawio", "sys_ptrace", "sys_chroot",
                            "mknod", "net_admin", "net_raw", "sys_boot"})  # fmt: skip
    assert "--no-new-privs" in chroot.SHELL_SANDBOX
    assert "--bounding-set -all,+chown," in chroot.SHELL_SANDBOX
