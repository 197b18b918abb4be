"""The ``# expect:`` lines of a playbook fixture: the errors it must give, in order."""

from __future__ import annotations

from pathlib import Path

SEVERAL = Path(__file__).parent / "several" / "several-errors.yaml"


def expected_errors(path: Path) -> list[str]:
    """``<file>:<line>: <field>: <message>`` for each ``# expect: <line>: ...`` line (a
    trailing ``...`` makes one a prefix: see ``matches``)."""
    return [
        f"{path}:{line.removeprefix('# expect: ')}"
        for line in path.read_text().splitlines()
        if line.startswith("# expect: ")
    ]


def matches(got: list[str], want: list[str]) -> bool:
    """``got`` is ``want``, error for error (a wanted error ending in ``...`` is a prefix)."""
    return len(got) == len(want) and all(
        line.startswith(wanted.removesuffix("...")) if wanted.endswith("...") else line == wanted
        for line, wanted in zip(got, want, strict=True)
    )
