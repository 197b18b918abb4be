"""Running one repair on many instances: batches, slow start, an error budget, Ctrl-C.

``run_fleet`` is the scheduler, nothing else: what one instance's repair is comes in as
``repair(server, events)`` (the CLI passes ``run_playbook`` through a ``RescueWorkflow`` of its
own for each instance, all sharing one cloud connection and one journal), how the run is shown
comes in as a ``FleetObserver``. The rules (docs/fleet.md, "Running"):

* batches run one after the other; the next starts only when every instance of the one before
  succeeded (changed, ok or skipped);
* at most the slow-start limit is in flight, as TCP's slow start paces its segments: the
  limit starts at ``Pacing.first`` (1 unless ``--slow-start``) and grows by one with each
  instance that succeeds, up to ``--concurrency`` (a failure never raises it), so it doubles
  each round (1, 2, 4, 8 ...: ``Pacing.slow_start``); a slot is filled again as soon as an
  instance ends, and each batch starts with the limit where the last one left it;
* ``--max-errors``: once the failures exceed it, nothing new starts; the instances in flight
  finish (and are unrescued, as always);
* Ctrl-C: nothing new starts, and each instance in flight is stopped at its next safe point
  (while it waits for RESCUE, or between two playbook steps): what its steps had changed is
  restored and it is unrescued. A second Ctrl-C stops waiting for them (``FleetAbandonedError``):
  their rescues stay in the journal for ``cloudrescue fleet resume``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from cloudrescue.cloud.base import ServerInfo
from cloudrescue.errors import CloudRescueError, ExitStatus, InvalidInputError
from cloudrescue.fleet.journal import MemberResult
from cloudrescue.fleet.pacing import Pacing

if TYPE_CHECKING:
    from cloudrescue.playbook.engine import StepReport
    from cloudrescue.playbook.runner import RunReport

LOG = logging.getLogger(__name__)
WAKE_INTERVAL = 0.2  # how often the scheduler looks at Ctrl-C while it waits for workers
STARTING = "starting"  # an instance's stage until its repair reports its first


class FleetAbandonedError(CloudRescueError):
    """A second Ctrl-C: the instances still in flight are left as they are, journalled."""

    exit_status = ExitStatus.INTERRUPTED


class _Cancelled(KeyboardInterrupt):
    """Raised inside a worker at a safe point once the run is interrupted: the rescue session
    treats it as the Ctrl-C it stands for (restore, unrescue)."""


@dataclass(frozen=True)
class ErrorBudget:
    """``--max-errors N`` or ``N%`` (of the selection); ``None``: no limit."""

    value: int | None = None
    percent: bool = False

    @classmethod
    def parse(cls, text: str | None) -> ErrorBudget:
        """The budget ``--max-errors`` gives (``InvalidInputError`` for a bad one)."""
        if text is None:
            return cls()
        word = text.strip()
        number = word.removesuffix("%")
        if not (number.isascii() and number.isdigit()) or (
            word.endswith("%") and int(number) > 100
        ):
            raise InvalidInputError(
                f"--max-errors {text!r}: expected a count (0 or more) or a percentage of the "
                "selection (0% to 100%)"
            )
        return cls(int(number), word.endswith("%"))

    def exceeded(self, failures: int, total: int) -> bool:
        """Whether ``failures`` among ``total`` instances are more than the budget allows."""
        if self.value is None:
            return False
        if self.percent:
            return failures * 100 > self.value * total
        return failures > self.value

    def describe(self) -> str:
        if self.value is None:
            return "no limit"
        return f"{self.value}{'%' if self.percent else ''}"


@dataclass
class Outcome:
    """What became of one instance of the run."""

    server: ServerInfo
    batch: int
    result: MemberResult = "not-started"
    report: RunReport | None = None
    error: CloudRescueError | None = None
    stages: list[tuple[str, float]] = field(default_factory=list)  # (stage, seconds)
    elapsed: float = 0.0
    stage: str = ""  # the stage it is in now (what a live display shows)

    @property
    def succeeded(self) -> bool:
        return self.result in ("changed", "ok", "skipped")


@dataclass(frozen=True)
class FleetResult:
    """The outcomes of every selected instance, in the run's order, and why it stopped early
    (``None`` when every instance was tried)."""

    outcomes: tuple[Outcome, ...]
    stopped: str | None
    interrupted: bool = False

    @property
    def failed(self) -> list[Outcome]:
        return [outcome for outcome in self.outcomes if outcome.result == "failed"]


class FleetObserver(Protocol):
    """How a fleet run is shown (a live table, one line per event, nothing)."""

    def started(self, outcome: Outcome) -> None: ...

    def stage(self, outcome: Outcome, message: str) -> None: ...

    def finished(self, outcome: Outcome) -> None: ...

    def note(self, message: str) -> None: ...


Repair = Callable[[ServerInfo, "InstanceEvents"], "RunReport"]


class InstanceEvents:
    """One instance's progress sink: stage timings into its ``Outcome``, the stages to the
    observer, and the run's cancellation raised at the safe points (once)."""

    def __init__(
        self,
        outcome: Outcome,
        observer: FleetObserver,
        cancel: threading.Event,
        clock: Callable[[], float],
    ) -> None:
        self._outcome = outcome
        self._observer = observer
        self._cancel = cancel
        self._clock = clock
        self._stage_started = clock()
        self._raised = False

    def _cancel_here(self) -> None:
        if self._cancel.is_set() and not self._raised:
            self._raised = True
            raise _Cancelled

    def close_stage(self) -> None:
        """End the current stage's timing."""
        now = self._clock()
        if self._outcome.stage not in ("", STARTING):
            self._outcome.stages.append((self._outcome.stage, round(now - self._stage_started, 3)))
        self._stage_started = now

    def stage(self, message: str) -> None:
        self.close_stage()
        self._outcome.stage = message
        self._observer.stage(self._outcome, message)

    def poll(self, server: ServerInfo, elapsed: float) -> None:
        if server.task_state == "rescuing":  # entering rescue: nothing on the disk yet
            self._cancel_here()

    def note(self, message: str) -> None:
        LOG.info("%s: %s", self._outcome.server.name, message)

    def detail(self, message: str) -> None:
        LOG.debug("%s: %s", self._outcome.server.name, message)

    def on_step(self, report: StepReport) -> None:
        """After each playbook step: a safe point (the phase restores the disk on the way
        out)."""
        self._cancel_here()


def result_of(report: RunReport) -> MemberResult:
    """``changed`` when a step changed something (or would, in check mode), ``skipped`` when
    every step was skipped, else ``ok``."""
    if report.changed:
        return "changed"
    steps = report.result.steps
    if steps and all(step.status == "skipped" for step in steps):
        return "skipped"
    return "ok"


class _Scheduler:
    def __init__(
        self,
        outcomes: Sequence[Outcome],
        pacing: Pacing,
        budget: ErrorBudget,
        repair: Repair,
        observer: FleetObserver,
        clock: Callable[[], float],
    ) -> None:
        self.outcomes = outcomes
        self.pacing = pacing
        self.budget = budget
        self.repair = repair
        self.observer = observer
        self.clock = clock
        self.cancel = threading.Event()
        self.changed = threading.Condition()
        self.in_flight = 0
        self.failures = 0
        self.limit = pacing.first  # the slow start's in-flight limit, for the whole run

    def _work(self, outcome: Outcome) -> None:
        events = InstanceEvents(outcome, self.observer, self.cancel, self.clock)
        started = self.clock()
        try:
            outcome.report = self.repair(outcome.server, events)
            outcome.result = result_of(outcome.report)
        except KeyboardInterrupt:
            outcome.result = "interrupted"
        except CloudRescueError as error:
            outcome.result, outcome.error = "failed", error
        except Exception as error:  # a bug: this instance fails, the others go on
            LOG.debug("unexpected error on %s", outcome.server.name, exc_info=True)
            outcome.result = "failed"
            outcome.error = CloudRescueError(f"unexpected error: {type(error).__name__}: {error}")
        finally:
            if outcome.result == "not-started":  # anything else stopped the thread
                outcome.result = "failed"
            events.close_stage()
            outcome.stage = ""
            outcome.elapsed = round(self.clock() - started, 3)
            try:
                self.observer.finished(outcome)  # before the slot frees: events stay in order
            finally:
                self._release(outcome)

    def _release(self, outcome: Outcome) -> None:
        """Count a finished instance: its slot freed, the slow start and the failures."""
        with self.changed:
            self.in_flight -= 1
            if outcome.succeeded:
                self.limit = self.pacing.raised(self.limit)
            elif outcome.result == "failed":
                self.failures += 1
            self.changed.notify_all()

    def _start(self, outcome: Outcome) -> None:
        """Start a worker for ``outcome`` (counted in flight already; uncounted again when
        it cannot start: a Ctrl-C may land here)."""
        thread = threading.Thread(
            target=self._work, args=(outcome,), name=f"fleet-{outcome.server.name}", daemon=True
        )
        try:
            outcome.stage = STARTING
            self.observer.started(outcome)
            thread.start()
        except BaseException:
            outcome.stage = ""
            with self.changed:
                self.in_flight -= 1
                self.changed.notify_all()
            raise

    def wait_until(self, ready: Callable[[], bool]) -> None:
        """Wait (Ctrl-C stays deliverable) until ``ready()``, holding ``changed``."""
        while not ready():
            self.changed.wait(WAKE_INTERVAL)

    def _may_start(self) -> bool:
        return self.in_flight < self.limit or self._stop_reason() is not None

    def _stop_reason(self) -> str | None:
        if self.cancel.is_set():
            return "interrupted (Ctrl-C)"
        if self.budget.exceeded(self.failures, len(self.outcomes)):
            return (
                f"{self.failures} failed, more than --max-errors {self.budget.describe()}: "
                "nothing new was started"
            )
        return None

    def run(self) -> str | None:
        """Start every instance as the rules allow; returns why it stopped early, if it did."""
        position = 0
        for number, size in enumerate(self.pacing.batch_sizes(len(self.outcomes)), start=1):
            batch = self.outcomes[position : position + size]
            position += size
            for outcome in batch:
                with self.changed:
                    self.wait_until(self._may_start)
                    reason = self._stop_reason()
                    if reason is not None:
                        self.wait_until(lambda: self.in_flight == 0)
                        return reason
                    self.in_flight += 1
                self._start(outcome)
            with self.changed:
                self.wait_until(lambda: self.in_flight == 0)
                reason = self._stop_reason()
            if reason is not None:
                return reason
            failed = [outcome.server.name for outcome in batch if not outcome.succeeded]
            if failed and position < len(self.outcomes):
                return (
                    f"batch {number} did not succeed ({len(failed)} failed: "
                    f"{', '.join(failed[:3])}{' ...' if len(failed) > 3 else ''}): the next "
                    "batches were not started"
                )
        return None


def run_fleet(
    servers: Sequence[ServerInfo],
    pacing: Pacing,
    budget: ErrorBudget,
    repair: Repair,
    observer: FleetObserver,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> FleetResult:
    """Repair ``servers`` as ``pacing`` and ``budget`` allow; every outcome is in the result,
    in the selection's order (those never started are ``not-started``).

    A first Ctrl-C returns the result with ``interrupted`` set once the instances in flight
    have been restored; a second raises ``FleetAbandonedError``.
    """
    sizes = pacing.batch_sizes(len(servers))
    batches = [number for number, size in enumerate(sizes, start=1) for _ in range(size)]
    outcomes = tuple(Outcome(server, batch) for server, batch in zip(servers, batches, strict=True))
    scheduler = _Scheduler(outcomes, pacing, budget, repair, observer, clock)
    interrupted = False
    try:
        stopped = scheduler.run()
    except KeyboardInterrupt:
        interrupted = True
        scheduler.cancel.set()
        in_flight = [o.server.name for o in outcomes if o.stage]
        try:  # from here on, a second Ctrl-C abandons them
            observer.note(
                f"interrupted: restoring the {len(in_flight)} instance(s) in flight and starting "
                "no other (press Ctrl-C again to leave them as they are)"
            )
            with scheduler.changed:
                scheduler.wait_until(lambda: scheduler.in_flight == 0)
        except KeyboardInterrupt:
            left = [o.server.name for o in outcomes if o.stage]
            raise FleetAbandonedError(
                f"interrupted again: {len(left)} instance(s) left as they were "
                f"({', '.join(left[:5])}{' ...' if len(left) > 5 else ''})",
            ) from None
        stopped = "interrupted (Ctrl-C)"
    return FleetResult(outcomes, stopped, interrupted)
