"""One invalid playbook per schema rule (``invalid/*.yaml``), each with its expected error.

The first line of each file is ``# expect: <line>: <field>: <message>``; the error must be
exactly ``<file>:<line>: <field>: <message>`` (a trailing ``...`` makes it a prefix). Each file
breaks one rule once, so it gives that one error and no other (errors do not cascade; a file
with several is ``several/several-errors.yaml``, in ``test_all_errors.py``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cloudrescue.errors import ExitStatus, InvalidInputError
from cloudrescue.playbook.schema import load_file
from cloudrescue.playbook.source import PlaybookError

INVALID = sorted((Path(__file__).parent / "invalid").glob("*.yaml"))


def expected(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: "), f"{path.name}: no '# expect:' line"
    return f"{path}:{first.removeprefix('# expect: ')}"


@pytest.mark.parametrize("path", INVALID, ids=[path.stem for path in INVALID])
def test_invalid_playbook_gives_one_line_naming_file_line_and_field(path: Path) -> None:
    with pytest.raises(PlaybookError) as raised:
        load_file(path)
    error = raised.value
    assert isinstance(error, InvalidInputError)
    assert error.exit_status == ExitStatus.USAGE
    assert "\n" not in error.message
    want = expected(path)
    if want.endswith("..."):
        assert error.message.startswith(want.removesuffix("...")), error.message
    else:
        assert error.message == want
    assert error.lines() == [error.message], "\n".join(error.lines())


def test_every_rule_has_its_own_file() -> None:
    assert len(INVALID) >= 30
    lines = {expected(path).split(": ", 1)[1] for path in INVALID}
    assert len(lines) == len(INVALID)
