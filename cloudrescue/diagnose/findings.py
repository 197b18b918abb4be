"""Findings: a cause, how sure it is, the evidence for it, and what to do; and their ranking.

A ``Finding`` names either a playbook (its suggested command is ``cloudrescue run INSTANCE
PLAYBOOK``) or, for what no playbook cures (a kernel panic, a stopped instance), the advice
of what to do by hand. Its evidence is what was seen: a console line and its number, a probe's
result, what the API says.

Ranking (``rank``), the likeliest first:

1. by confidence: ``certain`` (what the cloud API states: a stopped instance, an ERROR
   fault), then ``high``, ``medium``, ``low`` (inferred from the console and the probes);
2. then by the strength of the evidence: each item weighs by where it comes from (the API 3,
   a probe 2: seen now by cloudrescue; a console line 1: written by the guest), summed;
3. then by the number of distinct evidence items, and last by name (a stable order).

Findings come from sources (``sources.FindingSource``): the API, the console, the probes; a
deep check of the rescued disk adds findings the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Literal

Confidence = Literal["certain", "high", "medium", "low"]
CONFIDENCES: tuple[Confidence, ...] = ("certain", "high", "medium", "low")
EvidenceSource = Literal["api", "console", "probe", "deep"]
WEIGHTS: dict[EvidenceSource, int] = {"api": 3, "probe": 2, "deep": 2, "console": 1}
"""How much one item of evidence weighs, by where it comes from."""
MAX_EVIDENCE_TEXT = 300
"""Evidence text is cut to this many characters (a console line can be anything)."""


def _cut(text: str) -> str:
    return text if len(text) <= MAX_EVIDENCE_TEXT else text[: MAX_EVIDENCE_TEXT - 1] + "…"


@dataclass(frozen=True)
class Evidence:
    """One thing seen: ``source`` (``api``, ``console``, ``probe``, ``deep``), the text as it
    was seen (guest text is kept as it is: renderers escape it) and, for a console line, its
    1-based number in the console log as read."""

    source: EvidenceSource
    text: str
    line: int | None = None

    @classmethod
    def console(cls, number: int, text: str) -> Evidence:
        """A console line (cut to ``MAX_EVIDENCE_TEXT`` characters)."""
        return cls("console", _cut(text), number)

    @property
    def weight(self) -> int:
        """Its weight in the ranking (``WEIGHTS``)."""
        return WEIGHTS[self.source]

    def describe(self) -> str:
        """``console line 27: ...``, ``probe: ...``: where it was seen, and what."""
        where = f"console line {self.line}" if self.line is not None else self.source
        return f"{where}: {self.text}"


@dataclass(frozen=True)
class Finding:
    """A cause of the instance's trouble, with its evidence and what to do about it.

    ``key`` identifies it (the playbook's name, or a built-in signature's); evidence for the
    same key from several sources is merged into one finding (``merge``). ``params`` are the
    ``--param NAME=VALUE`` its playbook should run with (the user and keys a probe checked).
    ``reachability``: it rests only on observations that say sshd cannot be reached, not why
    (``registry.Observation.reachability``). Its evidence is kept in order: console lines by
    number, then the rest as it came.
    """

    key: str
    cause: str
    confidence: Confidence
    evidence: tuple[Evidence, ...]
    playbook: str | None = None
    advice: str | None = None
    params: tuple[tuple[str, str], ...] = ()
    reachability: bool = False

    def __post_init__(self) -> None:
        # console lines in the log's order first, then the rest as they came
        ordered = sorted(self.evidence, key=lambda item: (item.line is None, item.line or 0))
        object.__setattr__(self, "evidence", tuple(ordered))

    @property
    def strength(self) -> int:
        """The summed weight of its evidence."""
        return sum(item.weight for item in self.evidence)

    def merge(self, other: Finding) -> Finding:
        """This finding with ``other``'s evidence (same key): the surer cause is kept."""
        surer = other if _level(other.confidence) < _level(self.confidence) else self
        evidence = tuple(dict.fromkeys([*self.evidence, *other.evidence]))
        params = tuple(dict.fromkeys([*self.params, *other.params]))
        reachability = self.reachability and other.reachability
        return replace(surer, evidence=evidence, params=params, reachability=reachability)

    def supported_by(self, evidence: Iterable[Evidence]) -> Finding:
        """This finding with more evidence."""
        return replace(self, evidence=tuple(dict.fromkeys([*self.evidence, *evidence])))

    def advice_for(self, instance: str) -> str | None:
        """The advice with ``INSTANCE`` replaced by the instance's name (quoted for a shell)."""
        import shlex

        return self.advice.replace("INSTANCE", shlex.quote(instance)) if self.advice else None

    def command(self, instance: str) -> str | None:
        """``cloudrescue run INSTANCE PLAYBOOK [--param NAME=VALUE ...]``, or None without a
        playbook. Arguments are quoted for a POSIX shell."""
        import shlex

        if self.playbook is None:
            return None
        words = ["cloudrescue", "run", instance, self.playbook]
        for name, value in self.params:
            words += ["--param", f"{name}={value}"]
        return " ".join(shlex.quote(word) for word in words)


def _level(confidence: Confidence) -> int:
    return CONFIDENCES.index(confidence)


def rank_key(finding: Finding) -> tuple[int, int, int, str]:
    """The sort key of the ranking (see the module docstring): smaller is likelier."""
    return (_level(finding.confidence), -finding.strength, -len(finding.evidence), finding.key)


def rank(findings: Iterable[Finding]) -> list[Finding]:
    """``findings`` merged by key and ranked, the likeliest first."""
    merged: dict[str, Finding] = {}
    for finding in findings:
        known = merged.get(finding.key)
        merged[finding.key] = finding if known is None else known.merge(finding)
    return sorted(merged.values(), key=rank_key)


def at_least(confidence: Confidence, floor: Confidence) -> bool:
    """Whether ``confidence`` is ``floor`` or surer."""
    return _level(confidence) <= _level(floor)
