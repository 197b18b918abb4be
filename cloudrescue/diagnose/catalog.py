"""The catalog as diagnose reads it: each playbook's declared symptoms, ready to match.

The shipped playbooks, plus a user's playbook files (``--playbook FILE``): a file's findings
name the file, so the suggested command runs it (``cloudrescue run web-1 ./my-fix.yaml``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from cloudrescue.diagnose.findings import CONFIDENCES, Confidence, Evidence, Finding
from cloudrescue.diagnose.registry import OBSERVATIONS
from cloudrescue.diagnose.signatures import BUILTIN, Signature
from cloudrescue.playbook.schema import Playbook
from cloudrescue.playbook.symptoms import ObservedSymptom

UNCLAIMED_ADVICE = (
    "no playbook of the catalog declares this: read the console (`cloudrescue console log "
    "INSTANCE`), or look at the disk (`cloudrescue shell INSTANCE --read-only`)"
)


@dataclass(frozen=True)
class Observed:
    """An observation that holds on the instance (``registry.OBSERVATIONS``), with its
    evidence. ``params`` are playbook parameters it suggests (``user``, ``key``) when the
    playbook declares them; ``doubt`` says why it may be wrong (its findings are then one
    level less sure, and say why)."""

    name: str
    evidence: tuple[Evidence, ...]
    params: tuple[tuple[str, str], ...] = ()
    doubt: str | None = None


def _less_sure(confidence: Confidence) -> Confidence:
    index = CONFIDENCES.index(confidence)
    return CONFIDENCES[min(index + 1, len(CONFIDENCES) - 1)]


@dataclass(frozen=True)
class _Claim:
    """A playbook that declares an observation among its symptoms."""

    reference: str
    symptom: ObservedSymptom
    parameters: frozenset[str]


@dataclass(frozen=True)
class Catalog:
    """Console signatures (the playbooks', then the built-in ones) and the observations each
    playbook declares."""

    signatures: tuple[Signature, ...]
    claims: tuple[_Claim, ...]
    playbooks: tuple[str, ...]
    entries: tuple[tuple[str, Playbook], ...] = ()
    """The ``(reference, playbook)`` pairs it was made of (``diagnose --deep`` runs some)."""

    @classmethod
    def of(cls, playbooks: Sequence[tuple[str, Playbook]]) -> Catalog:
        """The catalog of ``(reference, playbook)`` pairs: the reference is what the suggested
        command names (a shipped playbook's name, or the path of a user's file)."""
        signatures: list[Signature] = []
        claims: list[_Claim] = []
        for reference, playbook in playbooks:
            for item in playbook.symptoms.console:
                signatures.append(
                    Signature(reference, item.compiled(), item.cause, item.confidence, reference,
                              stops_boot=item.stops_boot)
                )
            for observed in playbook.symptoms.observations:
                claims.append(_Claim(reference, observed, frozenset(playbook.parameters)))
        return cls(
            (*signatures, *BUILTIN),
            tuple(claims),
            tuple(reference for reference, _ in playbooks),
            tuple(playbooks),
        )

    @classmethod
    def shipped(cls, extra: Sequence[tuple[str, Playbook]] = ()) -> Catalog:
        """The shipped playbooks' catalog, and ``extra`` (a user's files) after them."""
        from cloudrescue.playbook import catalog

        names = catalog.shipped_names()
        return cls.of([*((name, catalog.load_shipped(name)) for name in names), *extra])

    def findings(self, observed: Observed) -> list[Finding]:
        """The findings of an observation: one per playbook that declares it, or one without
        a playbook (what the observation means, and what to do by hand)."""
        meaning = OBSERVATIONS[observed.name]
        claims = [claim for claim in self.claims if claim.symptom.name == observed.name]
        if not claims:
            return [
                Finding(
                    key=f"observed:{observed.name}",
                    cause=meaning.description,
                    confidence="low",
                    evidence=observed.evidence,
                    advice=UNCLAIMED_ADVICE,
                    reachability=meaning.reachability,
                )
            ]
        found: list[Finding] = []
        for claim in claims:
            finding = Finding(
                key=claim.reference,
                cause=claim.symptom.cause,
                confidence=claim.symptom.confidence,
                evidence=observed.evidence,
                playbook=claim.reference,
                params=tuple(item for item in observed.params if item[0] in claim.parameters),
                reachability=meaning.reachability,
            )
            if observed.doubt is not None:
                finding = replace(
                    finding,
                    cause=f"{finding.cause} ({observed.doubt})",
                    confidence=_less_sure(finding.confidence),
                )
            found.append(finding)
        return found
