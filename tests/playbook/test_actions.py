"""Each generic action on a real guest tree: changed, then ok; check mode changes nothing."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from cloudrescue.playbook.actions.base import StepFailedError
from cloudrescue.playbook.paramtypes import Secret
from cloudrescue.playbook.schema import ParameterSpec
from tests.playbook.conftest import load, play, snapshot, statuses

Check = Callable[[Path], None]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def _owner(path: Path) -> tuple[int, int]:
    info = path.stat()
    return info.st_uid, info.st_gid


def _appended(root: Path) -> None:
    text = (root / "etc/ssh/sshd_config").read_text()
    assert text.endswith("#PermitRootLogin yes\nPasswordAuthentication no\n")


def _replaced(root: Path) -> None:
    lines = (root / "etc/ssh/sshd_config").read_text().splitlines()
    assert lines[2:] == ["PermitRootLogin prohibit-password"]


def _created(root: Path) -> None:
    assert (root / "etc/ssh/sshd_config.d/50-rescue.conf").read_text() == "UsePAM yes\n"


def _commented(root: Path) -> None:
    lines = (root / "etc/fstab").read_text().splitlines()
    assert lines[1] == "# cloudrescue: the step: UUID=2222 /data ext4 defaults 0 2"


def _written(root: Path) -> None:
    motd = root / "etc/motd"
    assert motd.read_text() == "hello\n"
    assert _mode(motd) == 0o600
    assert _owner(motd) == (1000, 1000)


def _moved_aside(root: Path) -> None:
    assert not (root / "etc/hostname").exists()
    assert (root / "etc/hostname.cloudrescue-20260101T000000Z").read_text() == "guest\n"


def _copied(root: Path) -> None:
    assert (root / "root/hostname").read_text() == "guest\n"
    assert _mode(root / "root/hostname") == 0o600


def _directory(root: Path) -> None:
    folder = root / "home/debian/.config"
    assert folder.is_dir()
    assert _mode(folder) == 0o700
    assert _owner(folder) == (1000, 1000)


def _chmodded(root: Path) -> None:
    assert _mode(root / "etc/shadow") == 0o600


def _chowned(root: Path) -> None:
    assert _owner(root / "etc/hostname") == (1000, 4)


CASES: dict[str, tuple[str, Check]] = {
    "ensure_line appends": (
        "action: ensure_line\n    path: /etc/ssh/sshd_config\n    line: PasswordAuthentication no",
        _appended,
    ),
    "ensure_line replaces the match": (
        "action: ensure_line\n    path: /etc/ssh/sshd_config\n"
        "    line: PermitRootLogin prohibit-password\n    match: '^#?PermitRootLogin'",
        _replaced,
    ),
    "ensure_line creates": (
        "action: ensure_line\n    path: /etc/ssh/sshd_config.d/50-rescue.conf\n"
        "    line: UsePAM yes\n    create: true",
        _created,
    ),
    "comment_lines": (
        "action: comment_lines\n    path: /etc/fstab\n    regex: ' /data '",
        _commented,
    ),
    "write_file": (
        "action: write_file\n    path: /etc/motd\n    content: \"hello\\n\"\n"
        "    mode: '0600'\n    owner: debian",
        _written,
    ),
    "remove_file": ("action: remove_file\n    path: /etc/hostname", _moved_aside),
    "copy": (
        "action: copy\n    source: /etc/hostname\n    dest: /root/hostname\n    mode: '0600'",
        _copied,
    ),
    "ensure_dir": (
        "action: ensure_dir\n    path: /home/debian/.config\n    mode: '0700'\n    owner: debian",
        _directory,
    ),
    "chmod": ("action: chmod\n    path: /etc/shadow\n    mode: '0600'", _chmodded),
    "chown": (
        "action: chown\n    path: /etc/hostname\n    owner: debian\n    group: adm",
        _chowned,
    ),
}


def _playbook(step: str) -> str:
    return f"name: t\ndescription: test\nsteps:\n  - name: the step\n    {step}\n"


@pytest.mark.parametrize("case", list(CASES))
def test_action_changes_then_is_ok(root: Path, case: str) -> None:
    step, check = CASES[case]
    playbook = load(_playbook(step))
    first = play(playbook, root)
    assert statuses(first) == ["changed"]
    assert first.steps[0].outcome.changes
    check(root)
    after_first = snapshot(root)
    second = play(playbook, root)
    assert statuses(second) == ["ok"], second.steps[0].outcome.changes
    assert snapshot(root) == after_first


@pytest.mark.parametrize("case", list(CASES))
def test_check_mode_leaves_the_tree_byte_identical(root: Path, case: str) -> None:
    step, _ = CASES[case]
    before = snapshot(root)
    result = play(load(_playbook(step)), root, dry_run=True)
    assert statuses(result) == ["changed"]
    assert result.steps[0].outcome.changes
    assert snapshot(root) == before


def test_check_mode_shows_a_unified_diff(root: Path) -> None:
    step, _ = CASES["ensure_line appends"]
    result = play(load(_playbook(step)), root, dry_run=True)
    diff = result.steps[0].outcome.changes[0].diff
    assert diff.startswith("--- a/etc/ssh/sshd_config\n+++ b/etc/ssh/sshd_config\n")
    assert "+PasswordAuthentication no\n" in diff


def test_ensure_line_refuses_a_missing_file_without_create(root: Path) -> None:
    playbook = load(_playbook("action: ensure_line\n    path: /etc/nope\n    line: x"))
    with pytest.raises(StepFailedError, match="does not exist"):
        play(playbook, root)


def test_write_file_without_diff_hides_the_content(root: Path) -> None:
    playbook = load(
        _playbook("action: write_file\n    path: /etc/shadow\n    content: x\n    show_diff: false")
    )
    change = play(playbook, root, dry_run=True).steps[0].outcome.changes[0]
    assert "x" not in change.diff.replace("/etc/shadow", "")
    assert "not shown" in change.diff


def test_run_rescue_runs_only_for_real_unless_read_only(root: Path) -> None:
    playbook = load(
        "name: t\ndescription: t\nsteps:\n"
        "  - name: look\n    action: run_rescue\n    argv: [cat, '{{ facts.root }}/etc/hostname']\n"
        "    read_only: true\n"
        "  - name: touch\n    action: run_rescue\n    argv: [touch, '{{ facts.root }}/marker']\n"
    )
    checked = play(playbook, root, dry_run=True)
    assert statuses(checked) == ["ok", "changed"]
    look, touch = (report.outcome.commands[0] for report in checked.steps)
    assert look.ran and look.output == "guest"
    assert not touch.ran and touch.argv == ("touch", f"{root}/marker")
    assert not (root / "marker").exists()
    real = play(playbook, root)
    assert statuses(real) == ["ok", "changed"]
    assert (root / "marker").exists()


def test_a_failing_command_fails_its_step(root: Path) -> None:
    playbook = load(
        "name: t\ndescription: t\nsteps:\n"
        "  - name: fail\n    action: run_rescue\n    argv: [sh, -c, 'echo boom >&2; exit 3']\n"
    )
    with pytest.raises(StepFailedError, match="exited with status 3: boom"):
        play(playbook, root)


def test_secrets_reach_commands_on_stdin_only(root: Path) -> None:
    playbook = load(
        "name: t\ndescription: t\nparameters:\n"
        "  password: {type: secret, description: A password.}\n"
        "steps:\n  - name: store\n    action: run_rescue\n"
        "    argv: [sh, -c, 'cat > \"$1\"', sh, '{{ facts.root }}/tmp/out']\n"
        "    stdin: \"debian:{{ password }}\"\n"
    )

    def secret(name: str, spec: ParameterSpec) -> Secret:
        return Secret("s3cret")

    result = play(playbook, root, secret=secret)
    assert (root / "tmp/out").read_text() == "debian:s3cret"
    assert "s3cret" not in repr(result)


def _copy_program(program: str, root: Path) -> None:
    """Copy a host program and the libraries it loads into the guest tree."""
    binary = shutil.which(program)
    assert binary is not None
    ldd = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    needed = [binary] + [word for word in ldd.split() if word.startswith("/")]
    for path in needed:
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(os.path.realpath(path), target)


@pytest.mark.skipif(os.geteuid() != 0, reason="chroot needs root")
def test_run_chroot_runs_the_guests_own_program(root: Path) -> None:
    _copy_program("touch", root)
    playbook = load(
        "name: t\ndescription: t\nchroot: true\nsteps:\n"
        f"  - name: touch\n    action: run_chroot\n    argv: [{shutil.which('touch')}, /etc/made]\n"
    )
    assert not (root / "etc/made").exists()
    play(playbook, root, dry_run=True)
    assert not (root / "etc/made").exists()
    result = play(playbook, root)
    assert statuses(result) == ["changed"]
    assert result.steps[0].outcome.commands[0].where == "chroot"
    assert (root / "etc/made").exists()
