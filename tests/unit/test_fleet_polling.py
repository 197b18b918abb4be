"""Shared polling (cloudrescue/fleet/polling.py): many waits, one listing, never a stale state."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest

from cloudrescue.cloud.base import CloudBackend, ServerInfo, keeps_marks
from cloudrescue.errors import CloudError, NotFoundError
from cloudrescue.fleet.polling import SharedPolling
from tests.fakes import FakeClock, FakeCloud


def test_after_a_rescue_request_only_later_listings_answer() -> None:
    """The state after a rescue request is never one listed before it."""
    clock = FakeClock()
    cloud = FakeCloud(clock)
    server = cloud.add("web-1")
    polled = SharedPolling(cloud, interval=1.0, clock=clock, sleep=clock.sleep)
    assert polled.get_server(server.id).status == "ACTIVE"
    polled.rescue(server, admin_password="pw", image=None)
    seen = polled.get_server(server.id)
    assert (seen.status, seen.task_state) != ("ACTIVE", None)  # a new listing, not the old one
    assert [call for call in cloud.calls if call.startswith("get")] == []
    assert polled.listings == 2 and clock.slept == pytest.approx(1.0)  # at most one a second
    while polled.get_server(server.id).status != "RESCUE":
        clock.sleep(1.0)
    polled.unrescue(server.id)
    seen = polled.get_server(server.id)
    assert (seen.status, seen.task_state) != ("RESCUE", None)  # not the listing before it


def test_a_listing_answered_within_the_interval_answers_at_once() -> None:
    """A worker polling for a change sees it as soon as any listing shows it: one answered
    less than ``interval`` ago serves the call, an older one does not."""
    clock = FakeClock()
    cloud = FakeCloud(clock)
    server = cloud.add("web-1")
    polled = SharedPolling(cloud, interval=1.0, clock=clock, sleep=clock.sleep)
    assert polled.get_server(server.id).status == "ACTIVE"
    cloud.servers[server.id].info = dataclasses.replace(server, status="RESCUE")
    clock.sleep(0.5)
    assert polled.get_server(server.id).status == "ACTIVE" and polled.listings == 1
    clock.sleep(0.5)  # the last listing is now as old as the interval: a new one
    assert polled.get_server(server.id).status == "RESCUE" and polled.listings == 2


class SlowListing:
    """A backend whose listing takes a while (real time), counting listings and gets."""

    def __init__(self, servers: list[ServerInfo]) -> None:
        self.servers = servers
        self.listings = 0
        self.gets = 0
        self.cloud_name = "slow"

    def list_servers(self, **filters: object) -> list[ServerInfo]:
        self.listings += 1
        time.sleep(0.05)
        return self.servers

    def get_server(self, server_id: str) -> ServerInfo:
        self.gets += 1
        raise NotFoundError(f"instance {server_id}: not found")


def test_many_waiting_workers_share_the_listings() -> None:
    servers = [ServerInfo(id=f"id-{n}", name=f"w{n}", status="ACTIVE", task_state=None)
               for n in range(40)]  # fmt: skip
    backend = SlowListing(servers)
    polled = SharedPolling(backend, interval=0.0)  # type: ignore[arg-type]
    start = threading.Barrier(40)
    seen: list[str] = []

    def worker(server: ServerInfo) -> None:
        start.wait()
        seen.append(polled.get_server(server.id).name)

    threads = [threading.Thread(target=worker, args=(server,)) for server in servers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(seen) == sorted(server.name for server in servers)
    assert backend.listings <= 3 and backend.gets == 0  # 40 waits, not 40 requests


def test_a_server_the_listing_does_not_show_is_asked_for() -> None:
    backend = SlowListing([])
    polled = SharedPolling(backend, interval=0.0)  # type: ignore[arg-type]
    with pytest.raises(NotFoundError):
        polled.get_server("gone")
    assert backend.gets == 1


class FlakyListing(SlowListing):
    """A listing that fails while ``failing``."""

    failing = True

    def list_servers(self, **filters: object) -> list[ServerInfo]:
        if self.failing:
            raise CloudError("HTTP 503: service unavailable")
        return super().list_servers(**filters)


def test_a_failed_listing_fails_its_waiters_and_the_next_call_lists_again() -> None:
    server = ServerInfo(id="id-1", name="web-1", status="ACTIVE", task_state=None)
    backend = FlakyListing([server])
    polled = SharedPolling(backend, interval=0.0)  # type: ignore[arg-type]
    with pytest.raises(CloudError, match="503"):
        polled.get_server(server.id)
    backend.failing = False
    assert polled.get_server(server.id).status == "ACTIVE"


def test_every_other_call_is_the_backends_own() -> None:
    """Only ``get_server`` is shared: the rest of the interface goes to the backend as it is
    (``_Forwarded``, typed from ``CloudBackend``)."""
    clock = FakeClock()
    cloud = FakeCloud(clock)
    server = cloud.add("web-1")
    polled = SharedPolling(cloud, interval=1.0, clock=clock, sleep=clock.sleep)
    interface = {name for name in vars(CloudBackend) if not name.startswith("_")}
    assert interface <= set(dir(SharedPolling))
    assert polled.cloud_name == cloud.cloud_name
    assert polled.find_server("web-1") == server
    assert [found.id for found in polled.list_servers(statuses=("ACTIVE",))] == [server.id]
    polled.set_marks(server.id, {"cloudrescue:run": "r1"})
    polled.clear_marks(server.id, ("cloudrescue:run",))
    assert cloud.calls == ["find web-1", "list status=ACTIVE", f"mark {server.id}",
                           f"unmark {server.id}"]  # fmt: skip
    assert polled.listings == 0  # a listing asked for is the caller's, not a shared one


def test_whether_marks_are_kept_is_the_backend_s() -> None:
    """A VPS keeps no marks: behind the shared polling too, so a fleet resume trusts the
    journal for it as a single resume does."""
    clock = FakeClock()
    assert keeps_marks(SharedPolling(FakeCloud(clock), clock=clock, sleep=clock.sleep))

    class Unmarked(FakeCloud):
        keeps_marks = False

    polled = SharedPolling(Unmarked(clock), clock=clock, sleep=clock.sleep)
    assert not keeps_marks(polled)
