"""`cloudrescue playbooks list/show/validate` and `run`'s checks, through the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cloudrescue.errors import ExitStatus
from cloudrescue.playbook import catalog

from .expectations import SEVERAL, expected_errors, matches

REPO = Path(__file__).parents[2]
CLOUDRESCUE = str(REPO / ".venv/bin/cloudrescue")
INVALID = Path(__file__).parent / "invalid"


def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    # No such cloud: reaching for the cloud fails with "Cloud no-such-cloud was not found".
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env.update(COLUMNS="200", OS_CLOUD="no-such-cloud")
    return subprocess.run(
        [CLOUDRESCUE, *args], input=stdin, capture_output=True, text=True, env=env, timeout=60
    )


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("cloudrescue: error:")]
    assert len(lines) == 1, result.stderr
    return lines[0].removeprefix("cloudrescue: error: ")


def test_list() -> None:
    result = cli("playbooks", "list")
    assert result.returncode == 0, result.stderr
    for name in catalog.shipped_names():
        assert name in result.stdout
        assert catalog.load_shipped(name).description in result.stdout


def test_show() -> None:
    result = cli("playbooks", "show", "fix-ssh-keys")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("# fix-ssh-keys\n")
    for text in ("| `key` | public_keys |", "`authorized_keys`", "changes: the user's authorized"):
        assert text in result.stdout
    missing = cli("playbooks", "show", "no-such-playbook")
    assert missing.returncode == ExitStatus.NOT_FOUND
    assert "no playbook named 'no-such-playbook'" in error_line(missing)


def test_validate_valid_and_invalid() -> None:
    path = REPO / "playbooks/fix-ssh-keys.yaml"
    valid = cli("playbooks", "validate", str(path))
    assert valid.returncode == 0, valid.stderr
    assert valid.stdout.strip() == f"{path}: valid (1 step)"
    bad = INVALID / "unknown-action.yaml"
    invalid = cli("playbooks", "validate", str(bad))
    assert invalid.returncode == ExitStatus.USAGE
    assert invalid.stdout == ""
    assert error_line(invalid).startswith(
        f"{bad}:10: steps[1].action: unknown action 'rm_rf' (known: ensure_line"
    )


def test_validate_prints_every_error_one_per_line() -> None:
    result = cli("playbooks", "validate", str(SEVERAL))
    assert result.returncode == ExitStatus.USAGE, result.stderr
    assert result.stdout == ""
    want = expected_errors(SEVERAL)
    # One error line, the summary; then each error as file:line: field: message, by line.
    assert error_line(result) == f"{SEVERAL}: {len(want)} errors"
    lines = result.stderr.splitlines()
    assert lines[0] == f"cloudrescue: error: {SEVERAL}: {len(want)} errors"
    assert matches(lines[1:], want), result.stderr


def test_run_refuses_a_playbook_with_several_errors_before_the_cloud() -> None:
    result = cli("run", "lab-1", str(SEVERAL), "--yes")
    assert result.returncode == ExitStatus.USAGE, result.stderr
    assert result.stdout == ""
    want = expected_errors(SEVERAL)
    assert matches([error_line(result)], want[:1]), result.stderr
    assert result.stderr.splitlines()[1:] == [
        f"hint: {len(want) - 1} more errors in this playbook: "
        f"`cloudrescue playbooks validate {SEVERAL}` lists them all"
    ]


def test_run_rejects_bad_parameters_before_the_cloud(tmp_path: Path) -> None:
    unknown = cli("run", "lab-1", "fix-ssh-keys", "--param", "nope=1", "--yes")
    assert unknown.returncode == ExitStatus.USAGE
    assert "has no parameter 'nope'" in error_line(unknown)
    bad = cli("run", "lab-1", "fix-firewall", "-p", "mode=open", "--yes")
    assert bad.returncode == ExitStatus.USAGE
    assert "'open' is not one of allow, disable" in error_line(bad)
    secret = cli("run", "lab-1", "reset-password", "-p", "password=x", "--yes")
    assert secret.returncode == ExitStatus.USAGE
    assert "is a secret: it is never taken from the command line" in error_line(secret)
    key = tmp_path / "bad.pub"
    key.write_text("ssh-ed25519 not-base64!\n")
    keys = cli("fix-ssh-keys", "lab-1", "--key", str(key), "--yes")
    assert keys.returncode == ExitStatus.USAGE
    assert "not valid base64" in error_line(keys)


def test_secrets_need_a_terminal_or_stdin() -> None:
    no_tty = cli("reset-password", "lab-1", "--yes")
    assert no_tty.returncode == ExitStatus.USAGE
    assert "pass --password-stdin" in error_line(no_tty)
    empty = cli("reset-password", "lab-1", "--yes", "--password-stdin")
    assert empty.returncode == ExitStatus.USAGE
    assert "no password on stdin" in error_line(empty)
    # With a password on stdin every check passes and the cloud is the next thing asked.
    given = cli("reset-password", "lab-1", "--yes", "--password-stdin", stdin="s3cret\n")
    assert "Cloud no-such-cloud was not found" in error_line(given)
    assert "s3cret" not in given.stderr + given.stdout


def test_cli_import_stays_light() -> None:
    probe = (
        "import sys\n"
        "from cloudrescue.cli import register_commands\n"
        "register_commands()\n"
        "heavy = {'yaml', 'pydantic', 'paramiko', 'openstack'} & set(sys.modules)\n"
        "print(sorted(heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
