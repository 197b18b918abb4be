"""The README's generated parts and its first lines stay true."""

from __future__ import annotations

from pathlib import Path

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
    assert block[0].startswith("sudo scripts/setup && sudo scripts/demo")
    assert block[1].startswith("sudo scripts/test")
    ci = (ROOT / ".ci" / "run").read_text()
    assert "exec scripts/test" in ci
    for script in ("setup", "demo", "test"):
        assert (ROOT / "scripts" / script).stat().st_mode & 0o111
