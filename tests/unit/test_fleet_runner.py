"""The fleet scheduler (cloudrescue/fleet/runner.py) driven through a fake repair: batches,
slow start (one more in flight per success, slots refilled at once), the error budget, Ctrl-C
at a safe point. No cloud, no sleeping on a clock: the fake repairs block on events the test
releases (a check that something did *not* start waits 0.2 s for it)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from cloudrescue.cloud.base import ServerInfo
from cloudrescue.errors import CloudRescueError, InvalidInputError
from cloudrescue.fleet.pacing import Pacing
from cloudrescue.fleet.runner import (
    ErrorBudget,
    FleetResult,
    InstanceEvents,
    Outcome,
    run_fleet,
)


def servers(count: int) -> list[ServerInfo]:
    return [ServerInfo(id=f"id-{n}", name=f"web-{n}", status="ACTIVE", task_state=None)
            for n in range(1, count + 1)]  # fmt: skip


@dataclass
class Steps:
    steps: tuple[Any, ...] = ()


@dataclass
class FakeReport:
    changed: bool = True
    result: Steps = field(default_factory=Steps)


class Recorder:
    def __init__(self) -> None:
        self.notes: list[str] = []
        self.ended: list[str] = []

    def started(self, outcome: Outcome) -> None:
        return None

    def stage(self, outcome: Outcome, message: str) -> None:
        return None

    def finished(self, outcome: Outcome) -> None:
        self.ended.append(outcome.server.name)

    def note(self, message: str) -> None:
        self.notes.append(message)


class FakeRepair:
    """Records how many repairs are in flight at once; fails the names in ``failing``."""

    def __init__(self, failing: tuple[str, ...] = ()) -> None:
        self.failing = failing
        self.lock = threading.Lock()
        self.in_flight = 0
        self.peaks: list[int] = []
        self.order: list[str] = []

    def __call__(self, server: ServerInfo, events: InstanceEvents) -> Any:
        with self.lock:
            self.in_flight += 1
            self.peaks.append(self.in_flight)
            self.order.append(server.name)
        try:
            events.stage("applying the fix")
            if server.name in self.failing:
                raise CloudRescueError(f"{server.name} broke")
            return FakeReport()
        finally:
            with self.lock:
                self.in_flight -= 1


def test_every_instance_is_repaired_in_order_and_reported() -> None:
    repair = FakeRepair()
    result = run_fleet(servers(7), Pacing(3), ErrorBudget(), repair, Recorder())
    assert [o.result for o in result.outcomes] == ["changed"] * 7
    assert [o.server.name for o in result.outcomes] == [f"web-{n}" for n in range(1, 8)]
    assert result.stopped is None and not result.interrupted
    assert max(repair.peaks) <= 3
    assert all(o.stages and o.stages[0][0] == "applying the fix" for o in result.outcomes)


def test_the_slow_start_runs_one_instance_alone_first() -> None:
    gate = threading.Event()
    seen: list[int] = []
    lock = threading.Lock()
    running = [0]

    def repair(server: ServerInfo, events: InstanceEvents) -> Any:
        with lock:
            running[0] += 1
            seen.append(running[0])
        if server.name == "web-1":
            assert gate.wait(0.3) is False  # nobody else started meanwhile
        with lock:
            running[0] -= 1
        return FakeReport()

    result = run_fleet(servers(6), Pacing(4), ErrorBudget(), repair, Recorder())
    assert seen[0] == 1 and seen[1] == 1  # web-2 started only after web-1 ended
    assert all(o.succeeded for o in result.outcomes)


class Gated:
    """Repairs that each wait for the test to release them: ``started[name]`` is set when one
    begins, ``release(name, fail=...)`` ends it; ``starts`` records each start with how many
    repairs were in flight then (itself included)."""

    def __init__(self, count: int) -> None:
        names = [f"web-{n}" for n in range(1, count + 1)]
        self.started = {name: threading.Event() for name in names}
        self._released = {name: threading.Event() for name in names}
        self._failing: set[str] = set()
        self.lock = threading.Lock()
        self.running: set[str] = set()
        self.starts: list[tuple[str, int]] = []

    def __call__(self, server: ServerInfo, events: InstanceEvents) -> Any:
        with self.lock:
            self.running.add(server.name)
            self.starts.append((server.name, len(self.running)))
        self.started[server.name].set()
        assert self._released[server.name].wait(10), f"{server.name} never released"
        with self.lock:
            self.running.discard(server.name)
        if server.name in self._failing:
            raise CloudRescueError(f"{server.name} broke")
        return FakeReport()

    def wait_started(self, *names: str) -> None:
        for name in names:
            assert self.started[name].wait(5), f"{name} did not start (starts: {self.starts})"

    def not_started(self, name: str) -> bool:
        """``name`` has not started within a moment (what the scheduler would do at once)."""
        return not self.started[name].wait(0.2)

    def release(self, *names: str, fail: bool = False) -> None:
        for name in names:
            if fail:
                self._failing.add(name)
            self._released[name].set()

    def release_all(self) -> None:
        for event in self._released.values():
            event.set()


def run_gated(
    count: int, pacing: Pacing, steps: Callable[[Gated], None]
) -> tuple[Gated, FleetResult]:
    """Run ``count`` gated repairs in a thread while ``steps`` releases them."""
    gated = Gated(count)
    results: list[FleetResult] = []
    thread = threading.Thread(
        target=lambda: results.append(
            run_fleet(servers(count), pacing, ErrorBudget(), gated, Recorder())
        ),
        daemon=True,
    )
    thread.start()
    try:
        steps(gated)
    finally:
        gated.release_all()
        thread.join(10)
    assert results, "run_fleet did not return"
    return gated, results[0]


def test_the_limit_grows_by_one_per_success_and_refills_at_once() -> None:
    """Slow start as TCP's: 1 in flight; web-1's success makes it 2 (web-2, web-3); the first
    success of that round (web-2) makes it 3 while web-3 still runs: web-4 and web-5 start
    at once, not once the round is over."""

    def steps(gated: Gated) -> None:
        gated.wait_started("web-1")
        assert gated.not_started("web-2")  # limit 1
        gated.release("web-1")
        gated.wait_started("web-2", "web-3")
        assert gated.not_started("web-4")  # limit 2
        gated.release("web-2")
        gated.wait_started("web-4", "web-5")  # limit 3: web-3 is still in flight
        assert gated.running == {"web-3", "web-4", "web-5"}
        assert gated.not_started("web-6")
        gated.release("web-3")
        gated.wait_started("web-6")  # limit 4, 3 in flight: web-6 is the last one
        gated.release("web-4", "web-5", "web-6")

    gated, result = run_gated(6, Pacing(10), steps)
    assert gated.starts == [("web-1", 1), ("web-2", 1), ("web-3", 2),
                            ("web-4", 2), ("web-5", 3), ("web-6", 3)]  # fmt: skip
    assert [o.result for o in result.outcomes] == ["changed"] * 6


def test_slow_start_s_starts_s_at_once_then_grows_by_one_per_success() -> None:
    """``--slow-start 3``: web-1..3 start together; web-1's success makes the limit 4 (web-4
    and web-5 start, beside web-2 and web-3), and the limit never passes --concurrency 5."""

    def steps(gated: Gated) -> None:
        gated.wait_started("web-1", "web-2", "web-3")
        assert gated.not_started("web-4")  # limit 3
        gated.release("web-1")
        gated.wait_started("web-4", "web-5")  # limit 4, its slot and one more
        assert gated.running == {"web-2", "web-3", "web-4", "web-5"}
        gated.release("web-2")
        gated.wait_started("web-6", "web-7")  # limit 5 = --concurrency
        assert gated.not_started("web-8")
        gated.release("web-3")
        gated.wait_started("web-8")  # a slot freed, the limit stays 5
        gated.release_all()

    gated, result = run_gated(8, Pacing.parse(5, None, first=3), steps)
    assert [count for _, count in gated.starts] == [1, 2, 3, 3, 4, 4, 5, 5]
    assert all(o.succeeded for o in result.outcomes)


def test_a_failure_never_raises_the_limit() -> None:
    """web-1 fails: the limit stays 1 (its slot is filled again: web-2 starts, alone), and a
    failure in a later round leaves it where the successes put it."""

    def steps(gated: Gated) -> None:
        gated.wait_started("web-1")
        gated.release("web-1", fail=True)
        gated.wait_started("web-2")
        assert gated.not_started("web-3")  # still 1
        gated.release("web-2")
        gated.wait_started("web-3", "web-4")  # 2
        gated.release("web-3", fail=True)
        gated.wait_started("web-5")  # still 2: web-3's slot only
        assert gated.running == {"web-4", "web-5"}
        assert gated.not_started("web-6")
        gated.release("web-4")
        gated.wait_started("web-6", "web-7")  # 3
        gated.release("web-5", "web-6", "web-7")

    gated, result = run_gated(7, Pacing(10), steps)
    assert [count for _, count in gated.starts] == [1, 1, 1, 2, 2, 2, 3]
    assert [o.result for o in result.outcomes] == (
        ["failed", "changed", "failed"] + ["changed"] * 4
    )


def test_the_limit_stops_at_the_concurrency() -> None:
    def steps(gated: Gated) -> None:
        gated.wait_started("web-1")
        gated.release("web-1")
        gated.wait_started("web-2", "web-3")  # 2: --concurrency 2
        gated.release("web-2")
        gated.wait_started("web-4")
        assert gated.not_started("web-5")  # 2, not 3
        assert gated.running == {"web-3", "web-4"}
        gated.release("web-3", "web-4")
        gated.wait_started("web-5")
        gated.release("web-5")

    gated, result = run_gated(5, Pacing(2), steps)
    assert max(count for _, count in gated.starts) == 2
    assert all(o.succeeded for o in result.outcomes)


def test_each_batch_starts_with_the_limit_the_last_one_left() -> None:
    """Batches 1, 3: the canary's success makes the limit 2, and the second batch starts two
    at once (not back at 1)."""

    def steps(gated: Gated) -> None:
        gated.wait_started("web-1")
        gated.release("web-1")
        gated.wait_started("web-2", "web-3")
        assert gated.not_started("web-4")
        gated.release("web-2")
        gated.wait_started("web-4")
        gated.release("web-3", "web-4")

    gated, result = run_gated(4, Pacing(10, Pacing.parse(10, "1,3").batches), steps)
    assert [count for _, count in gated.starts] == [1, 1, 2, 2]
    assert [o.batch for o in result.outcomes] == [1, 2, 2, 2]
    assert all(o.succeeded for o in result.outcomes)


def test_a_failed_canary_batch_stops_the_run() -> None:
    repair = FakeRepair(failing=("web-1",))
    result = run_fleet(servers(6), Pacing(4, Pacing.parse(4, "1,2").batches),
                       ErrorBudget(), repair, Recorder())  # fmt: skip
    assert [o.result for o in result.outcomes] == ["failed"] + ["not-started"] * 5
    assert result.stopped is not None and "batch 1 did not succeed" in result.stopped
    assert repair.order == ["web-1"]
    error = result.outcomes[0].error
    assert error is not None and error.message == "web-1 broke"


def test_max_errors_zero_stops_after_the_first_failure() -> None:
    repair = FakeRepair(failing=("web-2",))
    result = run_fleet(servers(8), Pacing(1), ErrorBudget.parse("0"), repair, Recorder())
    assert [o.result for o in result.outcomes] == (
        ["changed", "failed"] + ["not-started"] * 6
    )
    assert result.stopped is not None and "--max-errors 0" in result.stopped


def test_failures_within_the_budget_do_not_stop_the_run() -> None:
    repair = FakeRepair(failing=("web-2", "web-5"))
    result = run_fleet(servers(8), Pacing(2), ErrorBudget.parse("25%"), repair, Recorder())
    assert [o.result for o in result.outcomes].count("failed") == 2
    assert "not-started" not in [o.result for o in result.outcomes]
    assert result.stopped is None


def test_an_unexpected_error_fails_one_instance_only() -> None:
    def repair(server: ServerInfo, events: InstanceEvents) -> Any:
        if server.name == "web-2":
            raise RuntimeError("bug")
        return FakeReport(changed=False)

    result = run_fleet(servers(3), Pacing(1), ErrorBudget(), repair, Recorder())
    assert [o.result for o in result.outcomes] == ["ok", "failed", "ok"]
    error = result.outcomes[1].error
    assert error is not None and "RuntimeError: bug" in error.message


def test_ctrl_c_stops_scheduling_and_cancels_in_flight_at_a_safe_point() -> None:
    """The Ctrl-C lands in the scheduler (raised from the observer, where a signal would land
    in the main thread) while web-2 is in flight: web-2 sees the cancellation at its next step
    boundary, web-3 and after never start."""

    def repair(server: ServerInfo, events: InstanceEvents) -> Any:
        while server.name != "web-1":
            events.on_step(None)  # type: ignore[arg-type]  # a step boundary
            threading.Event().wait(0.01)
        return FakeReport()

    class Interrupting(Recorder):
        def started(self, outcome: Outcome) -> None:
            if outcome.server.name == "web-3":
                raise KeyboardInterrupt

    recorder = Interrupting()
    result = run_fleet(servers(5), Pacing(2), ErrorBudget(), repair, recorder)
    assert result.interrupted and result.stopped == "interrupted (Ctrl-C)"
    assert [o.result for o in result.outcomes] == (
        ["changed", "interrupted"] + ["not-started"] * 3
    )
    assert any("restoring the 1 instance(s) in flight" in note for note in recorder.notes)


@pytest.mark.parametrize(
    ("text", "failures", "total", "exceeded"),
    [("0", 1, 10, True), ("0", 0, 10, False), ("2", 2, 10, False), ("2", 3, 10, True),
     ("10%", 1, 10, False), ("10%", 2, 10, True), ("0%", 1, 50, True), ("100%", 50, 50, False)],
)  # fmt: skip
def test_error_budget(text: str, failures: int, total: int, exceeded: bool) -> None:
    assert ErrorBudget.parse(text).exceeded(failures, total) is exceeded


@pytest.mark.parametrize("text", ["", "-1", "x", "101%", "1.5", "%"])
def test_a_bad_error_budget_is_refused(text: str) -> None:
    with pytest.raises(InvalidInputError, match="--max-errors"):
        ErrorBudget.parse(text)


def test_no_budget_never_stops() -> None:
    assert not ErrorBudget.parse(None).exceeded(1000, 1000)


def test_a_second_ctrl_c_abandons_the_instances_in_flight() -> None:
    """The first Ctrl-C lands while web-2 runs a step that takes long (no safe point); the
    second (``interrupt_main``, as a signal would) lands while the scheduler waits for it."""
    import _thread

    from cloudrescue.fleet.runner import FleetAbandonedError

    stop = threading.Event()

    def repair(server: ServerInfo, events: InstanceEvents) -> Any:
        while server.name == "web-2" and not stop.is_set():
            threading.Event().wait(0.01)  # a long step: no safe point
        return FakeReport()

    class Impatient(Recorder):
        def started(self, outcome: Outcome) -> None:
            if outcome.server.name == "web-3":
                raise KeyboardInterrupt

        def note(self, message: str) -> None:
            super().note(message)
            _thread.interrupt_main()  # pressed again while the scheduler waits

    try:
        left = r"1 instance\(s\) left as they were \(web-2\)"
        with pytest.raises(FleetAbandonedError, match=left):
            run_fleet(servers(4), Pacing(2), ErrorBudget(), repair, Impatient())
    finally:
        stop.set()
