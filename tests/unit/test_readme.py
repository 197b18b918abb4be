"""The README's generated parts and its first lines stay true."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloudrescue.errors import EXIT_STATUS_MEANING, ExitStatus, exit_status_table

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_exit_code_table_is_generated_from_the_error_tree() -> None:
    assert exit_status_table() in README


def test_every_exit_status_has_a_meaning() -> None:
    assert set(EXIT_STATUS_MEANING) == set(ExitStatus)
    assert ExitStatus.INTERRUPTED == 130


def test_readme_opens_with_the_two_fresh_machine_commands() -> None:
    block = README.split("```sh\n", 1)[1].split("```", 1)[0].splitlines()
    assert block[0].startswith("scripts/setup && scripts/demo ")
    assert block[1].startswith("scripts/test ")
    ci = (ROOT / ".ci" / "run").read_text()
    assert "exec scripts/test" in ci
    for script in ("setup", "demo", "test"):
        assert (ROOT / "scripts" / script).stat().st_mode & 0o111


NOBODY = 65534
FAKE_SUDO = """#!/bin/sh
printf '%s\\n' "$@" > "$(dirname "$0")/called"
"""


@pytest.fixture
def bin_dir() -> Iterator[Path]:
    """A PATH of only the programs the scripts' first lines use, readable by ``nobody``."""
    folder = Path(tempfile.mkdtemp(prefix="cloudrescue-path-"))
    folder.chmod(0o777)
    for program in ("bash", "dirname", "basename", "printf"):
        found = shutil.which(program)
        assert found
        (folder / program).symlink_to(found)
    yield folder
    shutil.rmtree(folder)


def as_nobody(script: str, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            shutil.which("setpriv") or "setpriv",
            f"--reuid={NOBODY}",
            f"--regid={NOBODY}",
            "--clear-groups",
            str(ROOT / "scripts" / script),
            "--flag",
        ],
        env={"PATH": str(path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run the scripts as another user")
@pytest.mark.parametrize("script", ["setup", "demo", "test"])
def test_a_user_without_root_is_told_or_goes_through_sudo(script: str, bin_dir: Path) -> None:
    """The README's commands need no `sudo` in front: as root they run, as a user they re-run
    themselves through sudo, and without sudo they say so in one line."""
    refused = as_nobody(script, bin_dir)
    assert refused.returncode == 1
    assert refused.stderr == f"{script}: needs root (and sudo is not installed): run it as root\n"
    (bin_dir / "sudo").write_text(FAKE_SUDO)
    (bin_dir / "sudo").chmod(0o755)
    through = as_nobody(script, bin_dir)
    assert through.returncode == 0, through.stderr
    called = (bin_dir / "called").read_text().splitlines()
    assert called[-3:] == ["--", str(ROOT / "scripts" / script), "--flag"]
    assert called[0].startswith("--preserve-env=CLOUDRESCUE_LAB_DIR,")
