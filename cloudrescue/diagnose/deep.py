"""``diagnose --deep``: the read-only checks of the rescued disk, as one more ``FindingSource``.

The checks are the catalog's playbooks that declare deep symptoms (``symptoms.deep``) and
need no parameter without a default: all of them run in check mode (``dry_run=True``: the
disk mounted read-only, nothing written) in one rescue, through ``run_playbooks``. A playbook
that would change something is a finding of high confidence, its evidence what it would
change (the guest file and the change); one that would change nothing clears its cause. The
others are skipped and said so (``DeepSource.notes``). Collect-only playbooks declare no deep
symptom and are never run here.

The rescue happens when the engine asks the source for its findings, after the API, the
console and the probes were read (so the probes see the instance as it was).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from cloudrescue.cloud.base import ServerInfo
from cloudrescue.diagnose.findings import Evidence, Finding
from cloudrescue.diagnose.registry import DEEP_CHECKS
from cloudrescue.diagnose.seen import Seen
from cloudrescue.errors import InvalidInputError
from cloudrescue.phase import DiskChoice, DiskOpener, open_disk_session
from cloudrescue.playbook.engine import StepReport
from cloudrescue.playbook.params import Resolved
from cloudrescue.playbook.paramtypes import Secret
from cloudrescue.playbook.runner import PlaybookRun, RunReport, run_playbooks
from cloudrescue.playbook.schema import ParameterSpec, Playbook
from cloudrescue.rescue import RescueWorkflow

MAX_EVIDENCE = 20
"""Evidence items kept per finding (what a playbook would change, then "... more")."""


def needs(playbook: Playbook) -> list[str]:
    """The parameters ``playbook`` cannot run without being given (no default, or a secret)."""
    return [
        name
        for name, spec in playbook.parameters.items()
        if spec.type == "secret" or spec.required
    ]


def no_secret(name: str, spec: ParameterSpec) -> Secret:
    """No secret is asked for: a playbook with one is never run unattended."""
    raise InvalidInputError(f"parameter {name!r} is a secret")


@dataclass(frozen=True)
class Checked:
    """A playbook a deep diagnosis runs in check mode: its reference (what ``cloudrescue run``
    names), the playbook and its values."""

    reference: str
    playbook: Playbook
    values: Mapping[str, Resolved]

    @property
    def checks(self) -> tuple[str, ...]:
        """The deep checks it declares."""
        return self.playbook.symptoms.deep


def select(
    playbooks: Sequence[tuple[str, Playbook]],
    given: Mapping[str, Sequence[str]] | None = None,
) -> tuple[list[Checked], list[tuple[str, str]]]:
    """The playbooks a deep diagnosis runs (``symptoms.deep`` declared, every parameter with
    a default), and those it skips with why (``(reference, reason)``). ``given``: values for
    the parameters a playbook declares (``key`` from ``--key``); the others keep their
    defaults. A second playbook of the same name is skipped."""
    chosen: list[Checked] = []
    skipped: list[tuple[str, str]] = []
    names: set[str] = set()
    for reference, playbook in playbooks:
        if not playbook.symptoms.deep:
            continue
        missing = needs(playbook)
        if missing:
            skipped.append((reference, f"needs {', '.join(missing)}"))
            continue
        if playbook.name in names:
            skipped.append((reference, f"a playbook named {playbook.name} is checked already"))
            continue
        own = {name: list(texts) for name, texts in (given or {}).items()
               if name in playbook.parameters}
        try:
            from cloudrescue.playbook.engine import check_values
            from cloudrescue.playbook.params import resolve

            values = resolve(playbook, own, no_secret)
            check_values(playbook, values)
        except InvalidInputError as error:
            skipped.append((reference, error.message))
            continue
        names.add(playbook.name)
        chosen.append(Checked(reference, playbook, values))
    return chosen, skipped


def _evidence(run: PlaybookRun) -> list[Evidence]:
    items: list[Evidence] = []
    for report in run.result.steps:
        if report.status != "changed":
            continue
        changes = report.outcome.changes
        for change in changes:
            items.append(Evidence("deep", f"{change.path}: {change.detail}"))
        if not changes:
            detail = report.outcome.note or report.note or "would change something"
            items.append(Evidence("deep", f"step {report.step.name!r}: {detail}"))
    if len(items) > MAX_EVIDENCE:
        more = len(items) - MAX_EVIDENCE + 1
        items = [*items[: MAX_EVIDENCE - 1], Evidence("deep", f"... {more} more changes")]
    return items


def _cause(checked: Checked) -> str:
    looked = "; ".join(DEEP_CHECKS[name] for name in checked.checks)
    return f"the disk shows what {checked.reference} repairs ({looked})"


def findings_of(checked: Sequence[Checked], report: RunReport) -> list[Finding]:
    """A finding (high confidence) per playbook that would change something."""
    found: list[Finding] = []
    for item, run in zip(checked, report.runs, strict=True):
        if run.status != "changed":
            continue
        found.append(
            Finding(
                key=item.reference,
                cause=_cause(item),
                confidence="high",
                evidence=tuple(_evidence(run)),
                playbook=item.reference,
            )
        )
    return found


def notes_of(
    checked: Sequence[Checked], skipped: Sequence[tuple[str, str]], report: RunReport | None
) -> list[str]:
    """What the deep checks cleared, what they could not run, and what they skipped."""
    notes: list[str] = []
    if report is not None:
        runs = list(zip(checked, report.runs, strict=True))
        cleared = [item.reference for item, run in runs if run.status == "ok"]
        if cleared:
            notes.append(f"deep: nothing to change for {', '.join(cleared)}")
        for item, run in runs:
            if run.status == "failed" and run.error is not None:
                notes.append(f"deep: {item.reference} could not check: {run.error.message}")
        not_run = [item.reference for item, run in runs if run.status == "not-run"]
        if not_run:
            notes.append(f"deep: not checked (a check failed before): {', '.join(not_run)}")
    for reference, why in skipped:
        notes.append(f"deep: skipped {reference} ({why})")
    return notes


@dataclass
class DeepSource:
    """The deep checks as a ``FindingSource``: one rescue of ``seen.server`` that runs the
    ``checked`` playbooks in check mode (``select``). After ``findings``, ``report`` is the
    run's report and ``notes`` says what was cleared, skipped or could not be checked."""

    workflow: RescueWorkflow
    checked: Sequence[Checked]
    skipped: Sequence[tuple[str, str]] = ()
    disk: DiskChoice = field(default_factory=DiskChoice)
    on_step: Callable[[StepReport], None] = lambda report: None
    open_disks: DiskOpener = open_disk_session
    name: str = "deep"
    report: RunReport | None = None

    def run(self, server: ServerInfo) -> RunReport:
        """The checks, in check mode, in one rescue of ``server``."""
        self.report = run_playbooks(
            self.workflow,
            server,
            [(item.playbook, item.values) for item in self.checked],
            dry_run=True,
            disk=self.disk,
            on_step=self.on_step,
            open_disks=self.open_disks,
        )
        return self.report

    def findings(self, seen: Seen) -> Sequence[Finding]:
        if not self.checked:
            return []
        return findings_of(self.checked, self.run(seen.server))

    @property
    def cleared(self) -> list[str]:
        """The playbooks that would change nothing: their causes are cleared."""
        if self.report is None:
            return []
        runs = zip(self.checked, self.report.runs, strict=True)
        return [item.reference for item, run in runs if run.status == "ok"]

    @property
    def notes(self) -> list[str]:
        """What the checks cleared, could not run, and skipped."""
        return notes_of(self.checked, self.skipped, self.report)
