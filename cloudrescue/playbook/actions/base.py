"""What an action is: a declaration (name, heading, typed parameters, what it changes) and
the function that applies it to a target, in check mode or for real."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict

from cloudrescue.errors import FixFailedError
from cloudrescue.guestfs import Change
from cloudrescue.playbook.target import Target

RunsOn = Literal["guest", "chroot", "rescue", "anywhere"]
RUNS_ON_MEANING: dict[RunsOn, str] = {
    "guest": "the guest's files (needs `mount: root`)",
    "chroot": "a command chrooted into the guest (needs `mount: root` and `chroot: true`)",
    "rescue": "a command on the rescue system (any mount phase)",
    "anywhere": "checks only (any mount phase)",
}


class StepFailedError(FixFailedError):
    """A step could not do its job (a command failed, an assertion did not hold)."""


class ActionParams(BaseModel):
    """Base of every action's parameter model: strict, closed, immutable."""

    model_config = ConfigDict(
        extra="forbid", strict=True, frozen=True, arbitrary_types_allowed=True
    )


@dataclass(frozen=True)
class CommandRecord:
    """A command a step ran, or in check mode would have run."""

    where: Literal["rescue", "chroot"]
    argv: tuple[str, ...]
    ran: bool
    exit_code: int | None = None
    output: str = ""


@dataclass(frozen=True)
class Outcome:
    """What applying a step did: changed or not, the file changes, the commands, and for
    diagnostics a text ``report``."""

    changed: bool
    changes: tuple[Change, ...] = ()
    commands: tuple[CommandRecord, ...] = ()
    note: str = ""
    report: str = ""


def file_outcome(changes: list[Change], note: str = "") -> Outcome:
    """The outcome of a step whose only effects are ``GuestFS`` changes."""
    return Outcome(changed=bool(changes), changes=tuple(changes), note=note)


P = TypeVar("P", bound=ActionParams)


@dataclass(frozen=True)
class Action(Generic[P]):
    """One action, declared once: everything else (validation, docs, help) derives from it."""

    name: str
    heading: str
    params: type[P]
    changes: str
    runs_on: RunsOn
    apply: Callable[[Target, P, str], Outcome] = field(repr=False)

    def run(self, target: Target, params: ActionParams, step: str) -> Outcome:
        """Apply validated ``params`` (of this action's model) for the step named ``step``."""
        if not isinstance(params, self.params):
            raise TypeError(f"{self.name} got {type(params).__name__} parameters")
        return self.apply(target, params, step)


AnyAction = Action[Any]
