"""``diagnose --fix``: the playbooks a diagnosis suggests, applied in one rescue.

The suggested playbooks are those of the findings of at least medium confidence, in rank
order, each once, that run with what the diagnosis knows: every parameter has a default or a
value the finding gives (``Finding.params``: the user and keys a probe checked); the others
are left out and said so. They run with ``run_playbooks`` (not in check mode), in that order,
in one rescue.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cloudrescue.diagnose.catalog import Catalog
from cloudrescue.diagnose.deep import needs, no_secret
from cloudrescue.diagnose.findings import Confidence, Finding, at_least
from cloudrescue.errors import InvalidInputError
from cloudrescue.playbook.params import Resolved
from cloudrescue.playbook.schema import Playbook

FLOOR: Confidence = "medium"
"""The least sure finding whose playbook ``--fix`` applies."""


@dataclass(frozen=True)
class Suggested:
    """A playbook ``--fix`` applies: its reference, the playbook, its values."""

    reference: str
    playbook: Playbook
    values: Mapping[str, Resolved]


def suggested(
    findings: Sequence[Finding], catalog: Catalog
) -> tuple[list[Suggested], list[tuple[str, str]]]:
    """The playbooks to apply for ``findings`` (ranked), and those left out with why."""
    from cloudrescue.playbook.engine import check_values
    from cloudrescue.playbook.params import resolve

    known = dict(catalog.entries)
    chosen: list[Suggested] = []
    left: list[tuple[str, str]] = []
    seen: set[str] = set()
    for finding in findings:
        reference = finding.playbook
        if reference is None or reference in seen or not at_least(finding.confidence, FLOOR):
            continue
        seen.add(reference)
        playbook = known.get(reference)
        if playbook is None:
            left.append((reference, "not in the catalog"))
            continue
        given: dict[str, list[str]] = {}
        for name, value in finding.params:
            given.setdefault(name, []).append(value)
        missing = [name for name in needs(playbook) if name not in given]
        if missing:
            left.append((reference, f"needs {', '.join(missing)}"))
            continue
        if any(item.playbook.name == playbook.name for item in chosen):
            left.append((reference, f"a playbook named {playbook.name} is applied already"))
            continue
        try:
            values = resolve(playbook, given, no_secret)
            check_values(playbook, values)
        except InvalidInputError as error:
            left.append((reference, error.message))
            continue
        chosen.append(Suggested(reference, playbook, values))
    return chosen, left

