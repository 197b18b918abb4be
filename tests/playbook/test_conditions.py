"""`when` and `assert` on a real guest tree."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cloudrescue.playbook.actions.base import StepFailedError
from tests.playbook.conftest import load, play, statuses

PARAMETERS = (
    "parameters:\n"
    "  mode: {type: choice, choices: [strict, loose], description: Mode., default: strict}\n"
)


def _when(condition: str) -> list[str]:
    return [
        "name: t\ndescription: t\n" + PARAMETERS + "steps:\n"
        "  - name: guarded\n    action: write_file\n    path: /etc/flag\n    content: x\n"
        f"    when: {condition}\n"
        "  - name: uses mode\n    action: ensure_line\n    path: /etc/flag\n"
        "    line: '{{ mode }}'\n    create: true\n"
    ]


@pytest.mark.parametrize(
    ("condition", "holds"),
    [
        ("{file_exists: /etc/hostname}", True),
        ("{file_exists: /etc/nope}", False),
        ("{file_contains: {path: /etc/fstab, regex: '^UUID=2222 '}}", True),
        ("{file_contains: {path: /etc/fstab, regex: nfs}}", False),
        ("{file_contains: {path: /etc/nope, regex: x}}", False),
        ("{family: debian}", True),
        ("{family: [rhel, suse]}", False),
        ("{service_enabled: ssh}", True),
        ("{service_enabled: nftables.service}", False),
        ("{param_equals: {param: mode, value: strict}}", True),
        ("{param_equals: {param: mode, value: loose}}", False),
        ("{not: {file_exists: /etc/nope}}", True),
        ("{all: [{family: debian}, {file_exists: /etc/nope}]}", False),
        ("{any: [{family: rhel}, {file_exists: /etc/hostname}]}", True),
        ("[{family: debian}, {service_enabled: ssh}]", True),
    ],
)
def test_when(root: Path, condition: str, holds: bool) -> None:
    result = play(load(_when(condition)[0]), root)
    assert statuses(result)[0] == ("changed" if holds else "skipped")
    assert (root / "etc/flag").read_text().startswith("x" if holds else "strict")


def test_masked_service_is_not_enabled(root: Path) -> None:
    os.symlink("/dev/null", root / "etc/systemd/system/ssh.service")
    assert statuses(play(load(_when("{service_enabled: ssh}")[0]), root))[0] == "skipped"


def test_family_from_id_like(root: Path) -> None:
    (root / "etc/os-release").write_text('ID=rocky\nID_LIKE="rhel centos fedora"\n')
    assert statuses(play(load(_when("{family: rhel}")[0]), root))[0] == "changed"


def test_skipped_step_says_why(root: Path) -> None:
    report = play(load(_when("{file_exists: /etc/nope}")[0]), root).steps[0]
    assert report.note == "when: /etc/nope exists"


def test_assert_passes_or_stops_the_playbook(root: Path) -> None:
    text = (
        "name: t\ndescription: t\nsteps:\n"
        "  - name: debian only\n    action: assert\n    that: {family: debian}\n"
        "  - name: has fstab\n    action: assert\n    that: {file_exists: /etc/nope}\n"
        "    message: the guest has no /etc/nope\n"
        "  - name: never\n    action: write_file\n    path: /etc/flag\n    content: x\n"
    )
    with pytest.raises(StepFailedError, match="the guest has no /etc/nope"):
        play(load(text), root)
    assert not (root / "etc/flag").exists()
