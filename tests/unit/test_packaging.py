"""Packaging (issue 9): the wheel, installed alone in a fresh venv as ``pipx install`` does,
is a working cloudrescue: its entry point runs and the 16 shipped playbooks are in it (the
``playbooks/`` folder reaches the wheel through the ``cloudrescue/playbooks`` link)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted(path.stem for path in (REPO / "playbooks").glob("*.yaml"))

pytestmark = pytest.mark.slow  # a wheel build and a venv with the dependencies: ~1 min


def test_the_wheel_in_a_fresh_venv_lists_every_playbook(tmp_path: Path) -> None:
    assert len(SHIPPED) == 16
    source = tmp_path / "source"  # a copy: a stale build/ of the checkout must not leak in
    shutil.copytree(
        REPO,
        source,
        symlinks=True,
        ignore=shutil.ignore_patterns(".venv", "build", "dist", "*.egg-info", ".*cache", ".git"),
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(source)],
        check=True,
        timeout=600,
    )
    [wheel] = tmp_path.glob("cloudrescue-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        packed = {name for name in archive.namelist() if name.startswith("cloudrescue/playbooks/")}
    assert packed == {f"cloudrescue/playbooks/{name}.yaml" for name in SHIPPED}
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run(
        [str(venv / "bin/python"), "-m", "pip", "install", "-q", str(wheel)],
        check=True,
        timeout=900,
    )
    listed = subprocess.run(
        [str(venv / "bin/cloudrescue"), "playbooks", "list", "-f", "json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        cwd=tmp_path,  # not the checkout: nothing may come from the source tree
    )
    rows = json.loads(listed.stdout)
    assert [row["name"] for row in rows] == SHIPPED
    assert all(row["description"] for row in rows)
    shown = subprocess.run(
        [str(venv / "bin/cloudrescue"), "playbooks", "show", "fix-ssh-keys", "-f", "json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert json.loads(shown.stdout)["source"] == "playbooks/fix-ssh-keys.yaml"
