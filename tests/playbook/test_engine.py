"""The engine on a real guest tree: idempotence, check mode, rollback, facts, values."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloudrescue.errors import InvalidInputError
from cloudrescue.playbook.actions.base import StepFailedError
from cloudrescue.playbook.engine import StepReport, check_values, run_steps
from cloudrescue.playbook.params import resolve
from tests.playbook.conftest import (
    guest_at,
    load,
    no_secret,
    phase_on,
    play,
    snapshot,
    statuses,
)

HARDEN = """\
name: harden-sshd
description: Turn password logins off and make sure sshd is enabled.
parameters:
  port: {type: int, description: SSH port., default: 22}
  owner: {type: user, description: Owner of the drop-in., default: "{{ facts.default_user }}"}
message: "port {{ port }}, {{ facts.family }}, {{ owner }}"
steps:
  - name: drop-in
    action: ensure_line
    path: /etc/ssh/sshd_config.d/50-rescue.conf
    line: PasswordAuthentication no
    create: true
  - name: owner of the drop-in
    action: chown
    path: /etc/ssh/sshd_config.d/50-rescue.conf
    owner: "{{ owner }}"
  - name: port
    action: ensure_line
    path: /etc/ssh/sshd_config
    line: "Port {{ port }}"
    match: "^#?Port "
  - name: rhel only
    action: write_file
    path: /etc/rhel
    content: x
    when: {family: rhel}
  - name: check
    action: assert
    that: {service_enabled: ssh}
"""

FAILING = """\
name: half-way
description: Changes two files, then fails.
steps:
  - name: edit sshd_config
    action: ensure_line
    path: /etc/ssh/sshd_config
    line: PermitRootLogin no
    match: "^#?PermitRootLogin"
  - name: new file
    action: write_file
    path: /etc/new
    content: new
  - name: remove hostname
    action: remove_file
    path: /etc/hostname
  - name: fails
    action: run_rescue
    argv: ["false"]
"""


def test_real_run_reports_then_second_run_changes_nothing(root: Path) -> None:
    playbook = load(HARDEN)
    first = play(playbook, root, given={"port": ["2222"]})
    assert statuses(first) == ["changed", "changed", "changed", "skipped", "ok"]
    assert (root / "etc/ssh/sshd_config").read_text().splitlines()[1] == "Port 2222"
    assert (root / "etc/ssh/sshd_config.d/50-rescue.conf").stat().st_uid == 1000
    assert first.message == "port 2222, debian, debian"
    after = snapshot(root)
    second = play(playbook, root, given={"port": ["2222"]})
    assert statuses(second) == ["ok", "ok", "ok", "skipped", "ok"]
    assert second.changes == []
    assert snapshot(root) == after


def test_check_mode_of_a_whole_playbook_changes_nothing(root: Path) -> None:
    before = snapshot(root)
    result = play(load(HARDEN), root, dry_run=True, given={"port": ["2222"]})
    assert statuses(result) == ["changed", "changed", "changed", "skipped", "ok"]
    assert snapshot(root) == before


def test_failing_step_after_writes_is_rolled_back(root: Path) -> None:
    before = snapshot(root)
    guest = guest_at(root)
    playbook = load(FAILING)
    seen: list[StepReport] = []
    with pytest.raises(StepFailedError, match="`false` exited with status 1"):
        run_steps(playbook, resolve(playbook, {}, no_secret), phase_on(guest), on_step=seen.append)
    assert [r.status for r in seen] == ["changed", "changed", "changed", "failed"]
    assert seen[-1].note.startswith("`false` exited")
    assert snapshot(root) != before
    restored = guest.rollback().restored  # what open_phase does when a step fails after writing
    assert len(restored) == 3
    assert snapshot(root) == before


def test_values_are_checked_before_anything_runs(root: Path) -> None:
    playbook = load(
        "name: t\ndescription: t\nparameters:\n"
        "  mode: {type: string, description: A mode., default: '0600'}\n"
        "steps:\n  - name: first\n    action: write_file\n    path: /etc/a\n    content: a\n"
        "  - name: second\n    action: chmod\n    path: /etc/a\n    mode: '{{ mode }}'\n"
    )
    values = resolve(playbook, {"mode": ["rw-"]}, no_secret)
    with pytest.raises(InvalidInputError, match=r"step 'second': mode: 'rw-' is not an octal"):
        check_values(playbook, values)
    before = snapshot(root)
    with pytest.raises(InvalidInputError):
        play(playbook, root, given={"mode": ["rw-"]})
    assert snapshot(root) == before


def test_whole_reference_keeps_the_type(root: Path) -> None:
    playbook = load(
        "name: t\ndescription: t\nparameters:\n"
        "  create: {type: bool, description: Create it., default: false}\n"
        "steps:\n  - name: line\n    action: ensure_line\n    path: /etc/new.conf\n"
        "    line: a\n    create: '{{ create }}'\n"
    )
    with pytest.raises(StepFailedError, match="create: true makes it"):
        play(playbook, root)
    assert statuses(play(playbook, root, given={"create": ["yes"]})) == ["changed"]
