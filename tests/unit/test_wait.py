"""Waiting for an instance's state on the fake cloud and clock: retries, timeouts, ERROR."""

from __future__ import annotations

import pytest

from cloudrescue.cloud.wait import wait_for_status
from cloudrescue.errors import CloudError, CloudTimeoutError, NotFoundError
from tests.fakes import FakeClock, FakeCloud, RecordingEvents

RESCUE = frozenset({"RESCUE"})


def rescuing(cloud: FakeCloud) -> str:
    server = cloud.add("web-1")
    cloud.rescue(server, admin_password="x", image=None)
    return server.id


def test_waits_until_the_state_is_reached_with_no_task() -> None:
    clock = FakeClock()
    cloud = FakeCloud(clock, transition=5.0)
    server_id = rescuing(cloud)
    events = RecordingEvents()
    server = wait_for_status(
        cloud, server_id, RESCUE, timeout=60, events=events, clock=clock, sleep=clock.sleep
    )
    assert (server.status, server.task_state) == ("RESCUE", None)
    assert 5.0 <= clock.slept <= 6.0
    assert events.polls >= 5


def test_passing_api_errors_are_retried() -> None:
    clock = FakeClock()
    cloud = FakeCloud(clock, transition=1.0, poll_errors=3)
    server_id = rescuing(cloud)
    server = wait_for_status(
        cloud, server_id, RESCUE, timeout=60, events=RecordingEvents(), clock=clock,
        sleep=clock.sleep,
    )
    assert server.status == "RESCUE"


def test_timeout_names_the_last_api_error() -> None:
    clock = FakeClock()
    cloud = FakeCloud(clock, transition=1000.0)
    server_id = rescuing(cloud)
    with pytest.raises(CloudTimeoutError, match=r"did not reach RESCUE within 10 s$"):
        wait_for_status(
            cloud, server_id, RESCUE, timeout=10, events=RecordingEvents(), clock=clock,
            sleep=clock.sleep,
        )
    cloud.poll_errors = 1000
    with pytest.raises(CloudTimeoutError, match=r"\(last API error: .*HTTP 503"):
        wait_for_status(
            cloud, server_id, RESCUE, timeout=10, events=RecordingEvents(), clock=clock,
            sleep=clock.sleep,
        )


def test_error_state_and_a_vanished_instance_end_the_wait_at_once() -> None:
    clock = FakeClock()
    cloud = FakeCloud(clock, transition=2.0, fail_to_error=True)
    server_id = rescuing(cloud)
    with pytest.raises(CloudError, match="went to ERROR while waiting for RESCUE"):
        wait_for_status(
            cloud, server_id, RESCUE, timeout=600, events=RecordingEvents(), clock=clock,
            sleep=clock.sleep,
        )
    assert clock.slept < 5
    with pytest.raises(NotFoundError):
        wait_for_status(
            cloud, "no-such-id", RESCUE, timeout=600, events=RecordingEvents(), clock=clock,
            sleep=clock.sleep,
        )
