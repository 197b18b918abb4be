"""Running a playbook's steps in a phase: render, check ``when``, apply, report.

Every step is rendered with the real values first (so nothing is changed when a value does
not fit); then each runs in order and reports ``changed``, ``ok`` or ``skipped``. A failing step
is reported as ``failed`` and its error propagates: leaving the phase (``open_phase``) then
restores the files changed so far from their backups.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, TypeAdapter, ValidationError

from cloudrescue.errors import InvalidInputError
from cloudrescue.guestfs import Change
from cloudrescue.phase import Phase
from cloudrescue.playbook.actions.base import ActionParams, Outcome
from cloudrescue.playbook.conditions import Condition, ConditionModel, when_condition
from cloudrescue.playbook.facts import FACTS
from cloudrescue.playbook.fields import as_text
from cloudrescue.playbook.params import FactDefault, Resolved
from cloudrescue.playbook.paramtypes import Value
from cloudrescue.playbook.schema import Playbook, Step
from cloudrescue.playbook.source import format_loc
from cloudrescue.playbook.target import Target
from cloudrescue.playbook.template import substitute, whole_reference

StepStatus = Literal["changed", "ok", "skipped", "failed"]
WHEN = TypeAdapter(Annotated[Condition, BeforeValidator(when_condition)])


class Scope:
    """Parameter values and facts as steps see them; each fact is found once, when first used."""

    def __init__(self, values: Mapping[str, Resolved], facts: Callable[[str], Value]) -> None:
        self._values = values
        self._facts = facts
        self._known: dict[str, Value] = {}

    def lookup(self, name: str) -> Value:
        if name.startswith("facts."):
            if name not in self._known:
                self._known[name] = self._facts(name.removeprefix("facts."))
            return self._known[name]
        value = self._values[name]
        return self.lookup(value.fact) if isinstance(value, FactDefault) else value


def sample_fact(name: str) -> Value:
    """A fact's sample value (checking values before anything is mounted)."""
    return FACTS[name].sample


def render(raw: Any, lookup: Callable[[str], Value]) -> Any:
    """``raw`` with references replaced: a whole reference keeps the value's type."""
    if isinstance(raw, str):
        name = whole_reference(raw)
        if name is not None:
            return lookup(name)
        return substitute(raw, lambda ref: as_text(lookup(ref)))
    if isinstance(raw, list):
        return [render(item, lookup) for item in raw]
    if isinstance(raw, dict):
        return {key: render(value, lookup) for key, value in raw.items()}
    return raw


@dataclass(frozen=True)
class RenderedStep:
    """A step with its final parameters and condition."""

    step: Step
    params: ActionParams
    when: ConditionModel | None


def render_step(step: Step, lookup: Callable[[str], Value]) -> RenderedStep:
    """Validate a step with real values; ``InvalidInputError`` names the step and field."""
    try:
        params = step.action.params.model_validate(render(dict(step.params), lookup))
        when = WHEN.validate_python(render(step.when, lookup)) if step.when is not None else None
    except ValidationError as error:
        first = error.errors()[0]
        message = str(first["msg"]).removeprefix("Value error, ")
        raise InvalidInputError(
            f"step {step.name!r}: {format_loc(first['loc']) or 'when'}: {message}"
        ) from None
    return RenderedStep(step, params, when)


def check_values(playbook: Playbook, values: Mapping[str, Resolved]) -> None:
    """Render every step with the user's values (facts as samples), before the cloud is used."""
    scope = Scope(values, sample_fact)
    for step in playbook.steps:
        render_step(step, scope.lookup)


@dataclass(frozen=True)
class StepReport:
    """What one step did (or, in check mode, would do)."""

    step: Step
    status: StepStatus
    outcome: Outcome = field(default_factory=lambda: Outcome(changed=False))
    note: str = ""


@dataclass(frozen=True)
class StepsResult:
    """The step reports of a run and the playbook's message, rendered."""

    steps: tuple[StepReport, ...]
    message: str | None

    @property
    def changes(self) -> list[Change]:
        return [change for report in self.steps for change in report.outcome.changes]


def run_steps(
    playbook: Playbook,
    values: Mapping[str, Resolved],
    phase: Phase,
    *,
    on_step: Callable[[StepReport], None] = lambda report: None,
) -> StepsResult:
    """Run the steps in order; a failing step is reported, then its error propagates."""
    scope = Scope(values, lambda name: FACTS[name].compute(phase))
    rendered = [render_step(step, scope.lookup) for step in playbook.steps]
    message = render(playbook.message, scope.lookup) if playbook.message else None
    target = Target(phase, scope.lookup)
    reports: list[StepReport] = []
    for item in rendered:
        try:
            if item.when is not None and not item.when.holds(target):
                report = StepReport(item.step, "skipped", note=f"when: {item.when.describe()}")
            else:
                outcome = item.step.action.run(target, item.params, item.step.name)
                status: StepStatus = "changed" if outcome.changed else "ok"
                report = StepReport(item.step, status, outcome, outcome.note)
        except Exception as error:
            on_step(StepReport(item.step, "failed", note=getattr(error, "message", str(error))))
            raise
        reports.append(report)
        on_step(report)
    return StepsResult(tuple(reports), message)
