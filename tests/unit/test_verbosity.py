"""``-q``, ``-v``, ``-vv`` and ``--debug`` on the command line (issue 9), against a cloud whose
Keystone refuses connections: by default and with ``-q`` the error is one line; ``-vv`` shows
the library's requests first (never a password); ``--debug`` adds the traceback on purpose."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from .test_bad_input import DEAD_CLOUDS_YAML

REPO = Path(__file__).resolve().parents[2]
ERROR = "cloudrescue: error: listing instances: cannot reach the cloud API"


def cli(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "clouds.yaml").write_text(DEAD_CLOUDS_YAML)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "OS_CLIENT_CONFIG_FILE": str(tmp_path / "clouds.yaml"),
        "CLOUDRESCUE_STATE_DIR": str(tmp_path / "state"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }
    return subprocess.run(
        [str(REPO / ".venv/bin/cloudrescue"), *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("flags", [(), ("-q",), ("-v",)])
def test_an_error_is_one_line(tmp_path: Path, flags: tuple[str, ...]) -> None:
    result = cli(tmp_path, *flags, "console", "log", "web-1", "--os-cloud", "dead")
    assert result.returncode == 5
    assert result.stderr.splitlines()[0].startswith(ERROR), result.stderr
    assert all(line.startswith("hint: ") for line in result.stderr.splitlines()[1:])


def test_vv_shows_the_requests_and_no_password(tmp_path: Path) -> None:
    result = cli(tmp_path, "console", "log", "web-1", "--os-cloud", "dead", "-vv")
    assert result.returncode == 5
    lines = result.stderr.splitlines()
    assert any(line.startswith("keystoneauth") and "127.0.0.1:9" in line for line in lines)
    assert "Traceback" not in result.stderr and "nothing" not in result.stderr.split(ERROR)[0]
    assert any(line.startswith(ERROR) for line in lines)


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    result = cli(tmp_path, "--debug", "console", "log", "web-1", "--os-cloud", "dead")
    assert result.returncode == 5
    assert "Traceback (most recent call last)" in result.stderr
    assert result.stderr.rstrip().splitlines()[-1].startswith(("hint: ", ERROR))
