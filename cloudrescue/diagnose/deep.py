"""``diagnose --deep``: the read-only checks of the rescued disk, as one more ``FindingSource``.

The checks are the catalog's playbooks that declare deep symptoms (``symptoms.deep``), in one
rescue. A deep check with an inspector of its own (``inspect.INSPECTORS``: ``root-password``,
``cloud-init``) reads the guest's files, in one more read-only phase after the playbooks: what
it finds is a finding of the playbook that declares it (``Inspection``). The playbooks that
declare other deep checks and need no parameter without a default run in check mode
(``dry_run=True``: the disk mounted read-only, nothing written, ``run_rescued`` with
``keep_going``): one that would change something is a finding of high confidence, its
evidence what it would change (the guest file and the change); one that would change nothing
clears its cause. A check that fails is a finding of low confidence ("check X could not run")
and the next ones run still. The playbooks that need a parameter are skipped and said so
(``DeepSource.notes``). Collect-only playbooks declare no deep symptom and are never run here.

The rescue happens when the engine asks the source for its findings, after the API, the
console and the probes were read (so the probes see the instance as it was).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from cloudrescue.cloud.base import ServerInfo
from cloudrescue.diagnose.findings import Evidence, Finding
from cloudrescue.diagnose.inspect import INSPECTORS, Context, Inspected
from cloudrescue.diagnose.registry import DEEP_CHECKS
from cloudrescue.diagnose.seen import Seen
from cloudrescue.errors import CloudRescueError, InvalidInputError, KeptInRescueError
from cloudrescue.fixes.passwords import today
from cloudrescue.phase import DiskChoice, DiskOpener, open_disk_session, open_phase
from cloudrescue.playbook.engine import StepReport
from cloudrescue.playbook.params import Resolved, check_distinct
from cloudrescue.playbook.paramtypes import Secret
from cloudrescue.playbook.runner import PlaybookRun, RunReport, run_rescued
from cloudrescue.playbook.schema import ParameterSpec, Playbook
from cloudrescue.rescue import RescuedInstance, RescueWorkflow

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
        if not [check for check in playbook.symptoms.deep if check not in INSPECTORS]:
            continue  # nothing to run: its checks read the guest (``inspections``)
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


@dataclass(frozen=True)
class Inspection:
    """A playbook whose deep checks have inspectors: its reference, the playbook, those
    checks (``inspect.INSPECTORS``)."""

    reference: str
    playbook: Playbook
    checks: tuple[str, ...]


def inspections(playbooks: Sequence[tuple[str, Playbook]]) -> list[Inspection]:
    """The playbooks that declare a deep check with an inspector, with those checks (a check
    inspected for an earlier playbook is not inspected again)."""
    found: list[Inspection] = []
    done: set[str] = set()
    for reference, playbook in playbooks:
        checks = tuple(c for c in playbook.symptoms.deep if c in INSPECTORS and c not in done)
        if checks:
            done.update(checks)
            found.append(Inspection(reference, playbook, checks))
    return found


def could_not_run(reference: str, why: str) -> Finding:
    """A check that failed: a finding of low confidence, with no playbook to run."""
    text = f"check {reference} could not run: {why}"
    return Finding(
        key=f"deep-failed:{reference}",
        cause=text,
        confidence="low",
        evidence=(Evidence("deep", text),),
        advice=f"check it by hand: `cloudrescue run INSTANCE {reference} --dry-run`",
    )


def inspection_finding(item: Inspection, inspected: Inspected) -> Finding:
    """The finding of an inspector that found a problem, naming ``item``'s playbook."""
    params = tuple(pair for pair in inspected.params if pair[0] in item.playbook.parameters)
    return Finding(
        key=item.reference,
        cause=inspected.cause,
        confidence=inspected.confidence,
        evidence=inspected.evidence,
        playbook=item.reference,
        params=params,
    )


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
    """A finding (high confidence) per playbook that would change something, one (low) per
    playbook whose check failed."""
    found: list[Finding] = []
    for item, run in zip(checked, report.runs, strict=True):
        if run.status == "failed":
            why = run.error.message if run.error is not None else "it failed"
            found.append(could_not_run(item.reference, why))
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
    checked: Sequence[Checked],
    skipped: Sequence[tuple[str, str]],
    report: RunReport | None,
    cleared: Sequence[str] = (),
) -> list[str]:
    """What the deep checks cleared and what they skipped."""
    notes: list[str] = []
    if report is not None or cleared:
        ran = [] if report is None else [
            item.reference for item, run in zip(checked, report.runs, strict=True)
            if run.status == "ok"
        ]
        done = list(dict.fromkeys([*ran, *cleared]))
        if done:
            notes.append(f"deep: nothing to change for {', '.join(done)}")
    for reference, why in skipped:
        notes.append(f"deep: skipped {reference} ({why})")
    return notes


@dataclass
class DeepSource:
    """The deep checks as a ``FindingSource``: one rescue of ``seen.server`` that runs the
    ``checked`` playbooks in check mode (``select``), then the ``inspected`` checks on the
    disk mounted read-only (``inspections``; ``user`` is ``--user``, ``day`` today for
    ``/etc/shadow``). After ``findings``, ``report`` is the run's report, ``inspected`` what
    each inspector found, and ``notes`` says what was cleared, skipped or seen."""

    workflow: RescueWorkflow
    checked: Sequence[Checked]
    skipped: Sequence[tuple[str, str]] = ()
    disk: DiskChoice = field(default_factory=DiskChoice)
    on_step: Callable[[StepReport], None] = lambda report: None
    open_disks: DiskOpener = open_disk_session
    name: str = "deep"
    inspect: Sequence[Inspection] = ()
    user: str | None = None
    day: Callable[[], int] = today
    probed: str | None = None
    report: RunReport | None = None
    inspected: list[tuple[Inspection, Inspected]] = field(default_factory=list)
    failed: list[Finding] = field(default_factory=list)
    unsure: set[str] = field(default_factory=set)  # playbooks an inspection of which failed

    def run(self, server: ServerInfo) -> RunReport:
        """The checks, in one rescue of ``server``: the playbooks in check mode, then the
        inspectors."""
        if self.checked:
            check_distinct([item.playbook for item in self.checked])
        names = " ".join([*(item.reference for item in self.checked),
                          *(item.reference for item in self.inspect)])
        events = self.workflow.events
        with self.workflow.session(server, command=f"diagnose --deep {names}") as rescued:
            runs = run_rescued(
                rescued,
                [(item.playbook, item.values) for item in self.checked],
                dry_run=True,
                disk=self.disk,
                events=events,
                on_step=self.on_step,
                open_disks=self.open_disks,
                keep_going=True,
            )
            if self.inspect:
                self._inspect(rescued)
        self.report = RunReport(self.workflow.backend.get_server(server.id), True, tuple(runs))
        return self.report

    def _inspect(self, rescued: RescuedInstance) -> None:
        """Every inspection's checks on the disk mounted read-only, in one phase; a check
        that fails (or a disk that does not mount) is a finding of low confidence."""
        context = Context(rescued.server, self.user, self.day(), self.probed)
        events = self.workflow.events
        events.stage("reading the guest's passwords and cloud-init state")
        try:
            with open_phase(rescued, "root", self.disk, dry_run=True, events=events,
                            open_disks=self.open_disks) as phase:
                files = phase.need_guest().files
                for item in self.inspect:
                    for check in item.checks:
                        try:
                            self.inspected.append((item, INSPECTORS[check](files, context)))
                        except KeptInRescueError:
                            raise
                        except CloudRescueError as error:
                            self._fail(item, check, error.message)
        except KeptInRescueError:
            raise
        except CloudRescueError as error:
            done = {(item.reference, found.check) for item, found in self.inspected}
            for item in self.inspect:
                for check in item.checks:
                    if (item.reference, check) not in done:
                        self._fail(item, check, error.message)

    def _fail(self, item: Inspection, check: str, why: str) -> None:
        self.failed.append(could_not_run(f"{item.reference} ({check})", why))
        self.unsure.add(item.reference)

    def findings(self, seen: Seen) -> Sequence[Finding]:
        if not self.checked and not self.inspect:
            return []
        if self.user is None:
            self.probed = seen.user
        report = self.run(seen.server)
        found = findings_of(self.checked, report)
        found += [inspection_finding(item, got) for item, got in self.inspected if got.found]
        return [*found, *self.failed]

    @property
    def cleared(self) -> list[str]:
        """The playbooks every check of which found nothing: their causes are cleared."""
        verdicts: dict[str, list[bool]] = {}
        if self.report is not None:
            for item, run in zip(self.checked, self.report.runs, strict=True):
                verdicts.setdefault(item.reference, []).append(run.status == "ok")
        for inspection, got in self.inspected:
            verdicts.setdefault(inspection.reference, []).append(got.cleared and not got.found)
        for reference in self.unsure:
            verdicts.setdefault(reference, []).append(False)
        return [reference for reference, clear in verdicts.items() if all(clear)]

    @property
    def notes(self) -> list[str]:
        """What the checks cleared, skipped, and what the inspectors saw."""
        inspected = [item.reference for item, got in self.inspected]
        cleared = [reference for reference in self.cleared if reference in inspected]
        seen = [note for _, got in self.inspected for note in got.notes]
        return [*notes_of(self.checked, self.skipped, self.report, cleared),
                *dict.fromkeys(seen)]
