"""The assert action: stop the playbook (restoring what it changed) unless a condition holds."""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, Field

from cloudrescue.playbook.actions.base import (
    Action,
    ActionParams,
    Outcome,
    StepFailedError,
)
from cloudrescue.playbook.conditions import Condition, when_condition
from cloudrescue.playbook.fields import LINE
from cloudrescue.playbook.target import Target


class AssertParams(ActionParams):
    that: Annotated[Condition, BeforeValidator(when_condition)] = Field(
        description="the condition that must hold (a list means all)"
    )
    message: Annotated[str | None, LINE] = Field(
        None, description="what to say when it does not (default: the condition)"
    )


def _assert(target: Target, params: AssertParams, step: str) -> Outcome:
    if not params.that.holds(target):
        raise StepFailedError(params.message or f"expected {params.that.describe()}")
    return Outcome(changed=False, note=f"checked: {params.that.describe()}")


ACTIONS = (
    Action(
        "assert",
        "Fail (and restore what earlier steps changed) unless a condition holds.",
        AssertParams,
        "nothing",
        "anywhere",
        _assert,
    ),
)
