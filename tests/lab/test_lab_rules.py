"""Lab rules that need neither root nor a lab: fault shapes, when a rescue announces its host
keys and how a rescue fails (the state machine on a fake runtime), root-anchored disk writes,
sshd's ports."""

from __future__ import annotations

import email.utils
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from pydantic import ValidationError

from cloudrescue.errors import InvalidInputError
from cloudrescue.lab.api import store as st
from cloudrescue.lab.api.app import proxy_error_page
from cloudrescue.lab.api.error_bodies import NovaError, error_for_path
from cloudrescue.lab.api.faults import Faults, FaultState
from cloudrescue.lab.api.machine import Machine
from cloudrescue.lab.api.store import ServerRecord, ServerStore
from cloudrescue.lab.disk_files import GuestFile, write_file
from cloudrescue.lab.init_common import effective_ports
from cloudrescue.lab.model import BootOutcome, InstanceSpec, RescueRequest

SPEC = InstanceSpec(
    "0f1e2d3c-0000-4000-8000-000000000001", "web-1", 1, "10.0.0.10", "fa:16:3e:0:0:1"
)


def test_fault_shapes() -> None:
    faults = FaultState()
    faults.merge(
        Faults.model_validate(
            {
                "api_lost_response": {"count": 2, "method": "POST", "path_regex": "/action$"},
                "guest_host_keys_at_shutdown": "keys",
                "announce_delay": 4,
            }
        )
    )
    assert faults.current() == {
        "api_lost_response": {
            "count": 2,
            "method": "POST",
            "path_regex": "/action$",
            "status": 504,
        },
        "announce_delay": 4.0,
        "guest_host_keys_at_shutdown": "keys",
    }
    assert faults.take_lost_response("GET", "/compute/v2.1/servers/x/action") is None
    assert faults.take_lost_response("POST", "/compute/v2.1/servers/x/action") == 504
    assert faults.take_error("POST", "/compute/v2.1/servers/x/action") is None
    assert faults.take_lost_response("post", "/compute/v2.1/servers/x/action") == 504
    assert faults.take_lost_response("POST", "/compute/v2.1/servers/x/action") is None
    assert faults.guest_host_keys_at_shutdown == "keys" and faults.announce_delay == 4.0
    faults.merge(Faults.model_validate({"guest_host_keys_at_shutdown": None}))
    assert faults.guest_host_keys_at_shutdown is None
    for wrong in (
        {"guest_host_keys_at_shutdown": "both"},
        {"api_lost_response": {"status": 404}},
        {"announce_delay": -1},
    ):
        with pytest.raises(ValidationError):
            Faults.model_validate(wrong)
    page = proxy_error_page(504)
    assert "504 Gateway Time-out" in page and "didn't respond in time" in page


def test_rate_limit_and_quota_fault_shapes() -> None:
    faults = FaultState()
    faults.merge(
        Faults.model_validate(
            {
                "api_rate_limit": {"count": 2, "path_regex": "/servers"},
                "api_over_quota": {"count": 1, "method": "POST"},
            }
        )
    )
    shown = faults.current()
    assert shown["api_rate_limit"] == {
        "count": 2, "path_regex": "/servers", "status": 429, "retry_after": 1,
        "retry_after_format": "seconds",
    }  # fmt: skip
    assert shown["api_over_quota"]["message"].startswith("Quota exceeded for instances")
    limit = faults.take_rate_limit("GET", "/compute/v2.1/servers/detail")
    assert limit is not None and (limit.status, limit.header(0.0)) == (429, "1")
    assert faults.take_rate_limit("GET", "/image/v2/images") is None  # not matching: not counted
    assert faults.take_rate_limit("GET", "/compute/v2.1/servers/x") is not None
    assert faults.take_rate_limit("GET", "/compute/v2.1/servers/x") is None  # count used up
    assert "api_rate_limit" not in faults.current()
    assert faults.take_over_quota("GET", "/compute/v2.1/servers") is None
    assert faults.take_over_quota("POST", "/compute/v2.1/servers/x/action") is not None
    faults.merge(Faults.model_validate({"api_error": {"count": 1, "retry_after": 0}}))
    error = faults.take_error("GET", "/image/v2/images")
    assert error is not None and (error.status, error.retry_after) == (503, 0)
    dated = Faults.model_validate(
        {"api_rate_limit": {"status": 413, "retry_after": 30, "retry_after_format": "date"}}
    ).api_rate_limit
    assert dated is not None
    assert dated.header(1_700_000_000.2) == email.utils.formatdate(1_700_000_031, usegmt=True)
    for wrong in (
        {"api_rate_limit": {"status": 503}},
        {"api_rate_limit": {"retry_after": -1}},
        {"api_rate_limit": {"retry_after_format": "minutes"}},
        {"api_over_quota": {"message": ""}},
        {"rescue_fails": "web-1"},
    ):
        with pytest.raises(ValidationError):
            Faults.model_validate(wrong)


def test_nova_overlimit_body_carries_retry_after() -> None:
    """nova's ``Fault``: 413 and 429 are ``overLimit``, with ``retryAfter`` from the header."""
    for status in (429, 413):
        answer = NovaError(status, "This request was rate-limited.", {"Retry-After": "3"})
        assert answer.body() == {
            "overLimit": {"code": status, "message": "This request was rate-limited.",
                          "retryAfter": "3"}
        }  # fmt: skip
        assert answer.response().headers["Retry-After"] == "3"
    plain = NovaError(429, "slow down").body()
    assert plain == {"overLimit": {"code": 429, "message": "slow down"}}
    assert NovaError(403, "Quota exceeded", {"Retry-After": "3"}).body() == {
        "forbidden": {"code": 403, "message": "Quota exceeded"}
    }
    keystone = error_for_path("/identity/v3/auth/tokens", 429, "slow down", {"Retry-After": "1"})
    assert json.loads(keystone.response().body)["error"]["title"] == "Too Many Requests"


def test_instance_faults_name_instances_by_id_or_name() -> None:
    faults = FaultState()
    faults.merge(Faults.model_validate({"rescue_fails": ["web-1"], "ssh_cut": [SPEC.id]}))
    assert faults.rescue_fails("any-id", "web-1") and not faults.rescue_fails(SPEC.id, "web-2")
    assert faults.ssh_cut(SPEC.id, "other-name") and not faults.ssh_cut("x", "web-1")
    faults.merge(Faults.model_validate({"rescue_fails": None}))
    assert not faults.rescue_fails("any-id", "web-1") and faults.ssh_cut(SPEC.id, "web-1")


class FakeRuntime:
    """Rescues instantly; records when the host keys were announced and the status then."""

    def __init__(self, store: ServerStore) -> None:
        self.store = store
        self.shutdowns = 0
        self.requests: list[RescueRequest] = []
        self.announced: list[tuple[float, str]] = []
        self.pending = False
        self.changed = threading.Event()
        self.rescuing = threading.Event()  # cleared: a rescue takes until the test sets it
        self.rescuing.set()

    def rescue(self, spec: InstanceSpec, request: RescueRequest) -> None:
        self.requests.append(request)
        self.pending = request.defer_host_keys
        assert self.rescuing.wait(10), "the test never let the rescue finish"

    def console_output(self, spec: InstanceSpec, length: int | None) -> str:
        return "login: \n"

    def unrescue(self, spec: InstanceSpec) -> BootOutcome:
        self.pending = False
        return "running"

    def shutdown(self, spec: InstanceSpec) -> None:
        self.shutdowns += 1

    def announce_host_keys(self, spec: InstanceSpec) -> bool:
        record = self.store.get(spec.id)
        assert record is not None
        if not self.pending:
            return False
        self.pending = False
        self.announced.append((time.monotonic(), record.status))
        self.changed.set()
        return True


@pytest.fixture()
def machine(tmp_path: Path) -> Iterator[tuple[Machine, FakeRuntime, list[float]]]:
    store = ServerStore(tmp_path / "servers.json")
    store.add(ServerRecord(SPEC, "image", "1", vm_state=st.ACTIVE, task_state=None))
    runtime = FakeRuntime(store)
    delay = [0.4]
    machine = Machine(runtime, store, lambda: 0.0, announce_delay=lambda: delay[0])  # type: ignore[arg-type]
    yield machine, runtime, delay
    machine.stop()


def _record(states: Machine) -> ServerRecord:
    record = states.store.get(SPEC.id)
    assert record is not None
    return record


def test_a_fault_with_an_action_hits_that_server_action_only() -> None:
    faults = FaultState()
    error = {"count": 1, "method": "POST", "path_regex": "/action$", "action": "rescue"}
    faults.merge(Faults.model_validate({"api_error": error}))
    path = "/compute/v2.1/servers/x/action"
    assert faults.take_error("POST", path, "os-getConsoleOutput") is None
    assert faults.take_error("POST", path) is None  # a body that names no action
    assert faults.take_error("POST", path, "rescue") is not None
    assert faults.take_error("POST", path, "rescue") is None  # its count is spent


def test_rescue_announces_its_host_keys_after_a_client_saw_rescue(
    machine: tuple[Machine, FakeRuntime, list[float]],
) -> None:
    """The block comes ``announce_delay`` after RESCUE was first served, not before."""
    states, runtime, delay = machine
    states.rescue(SPEC.id, RescueRequest("secret", "image")).result(timeout=5)
    record = _record(states)
    assert record.status == "RESCUE"
    assert runtime.requests[0].defer_host_keys and runtime.announced == []
    assert not runtime.changed.wait(timeout=delay[0] * 2)  # nobody looked yet
    seen = time.monotonic()
    states.rescue_seen(record)
    states.rescue_seen(record)  # later reads do not push it back
    assert runtime.changed.wait(timeout=5)
    ((when, status),) = runtime.announced
    assert status == "RESCUE" and when - seen >= 0.35


def test_an_announce_delay_of_0_prints_before_the_client_has_its_answer(
    machine: tuple[Machine, FakeRuntime, list[float]],
) -> None:
    """0 is "at once": printed within the call that serves RESCUE, so every client's
    baseline is read too late (the case `cloudrescue` answers by rescuing once more)."""
    states, runtime, delay = machine
    delay[0] = 0.0
    states.rescue(SPEC.id, RescueRequest("secret", "image")).result(timeout=5)
    assert runtime.announced == []
    states.rescue_seen(_record(states))
    assert [status for _, status in runtime.announced] == ["RESCUE"]


def test_each_store_change_is_on_disk_when_it_returns_and_copies_stand_alone(
    tmp_path: Path,
) -> None:
    """Changes made at once by many threads all reach the file (written outside the records'
    lock, newest last); a record handed out is a copy."""
    store = ServerStore(tmp_path / "servers.json")
    store.add(ServerRecord(SPEC, "image", "1", vm_state=st.ACTIVE, task_state=None))

    def tag(number: int) -> None:
        with store.edit(SPEC.id) as record:
            record.metadata[f"k{number}"] = str(number)

    workers = [threading.Thread(target=tag, args=(n,)) for n in range(40)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    again = ServerStore(tmp_path / "servers.json")
    again.load()
    reloaded = again.get(SPEC.id)
    assert reloaded is not None and reloaded == store.get(SPEC.id)
    assert reloaded.metadata == {f"k{n}": str(n) for n in range(40)}
    reloaded.metadata.clear()
    reloaded.tags.append("changed")
    assert again.get(SPEC.id) == store.get(SPEC.id) != reloaded
    with pytest.raises(RuntimeError), store.edit(SPEC.id) as record:  # a change that fails
        record.tags.append("half-made")
        raise RuntimeError
    assert store.get(SPEC.id) == again.get(SPEC.id)  # is not made
    kept = ServerRecord(replace(SPEC, id=SPEC.id[:-1] + "2"), "image", "1")
    store.add(kept)
    kept.tags.append("after add")  # the store has its own copy
    assert (stored := store.get(kept.id)) is not None and stored.tags == []
    store.remove(kept.id)
    store.remove(SPEC.id)
    after = ServerStore(tmp_path / "servers.json")
    after.load()
    assert after.all() == []


def test_rescue_seen_before_the_announcement_is_scheduled_still_counts(
    machine: tuple[Machine, FakeRuntime, list[float]],
) -> None:
    """A client can read RESCUE between the status change and the scheduling."""
    states, runtime, _ = machine
    real_rescue = runtime.rescue

    def rescue_then_seen(spec: InstanceSpec, request: RescueRequest) -> None:
        real_rescue(spec, request)
        states.rescue_seen(_record(states))

    runtime.rescue = rescue_then_seen  # type: ignore[method-assign]
    started = time.monotonic()
    states.rescue(SPEC.id, RescueRequest("secret", "image")).result(timeout=5)
    assert runtime.changed.wait(timeout=5)
    assert time.monotonic() - started < 5  # announce_delay, not the unseen fallback


def test_leaving_the_rescue_cancels_the_announcement_and_stop_flushes_it(
    machine: tuple[Machine, FakeRuntime, list[float]],
) -> None:
    states, runtime, delay = machine
    delay[0] = 30.0
    states.rescue(SPEC.id, RescueRequest("secret", "image")).result(timeout=5)
    states.unrescue(SPEC.id).result(timeout=5)
    assert not runtime.changed.wait(timeout=0.3) and runtime.announced == []
    states.rescue(SPEC.id, RescueRequest("secret", "image")).result(timeout=5)
    started = time.monotonic()
    states.stop()  # the rescue system runs on without the daemon: its block is printed now
    assert [status for _, status in runtime.announced] == ["RESCUE"]
    assert time.monotonic() - started < 5


def test_a_failing_rescue_ends_in_error_as_nova_records_it(
    machine: tuple[Machine, FakeRuntime, list[float]],
) -> None:
    """``rescue_fails``: the guest is powered off, no rescue system starts, the instance is
    ERROR with nova's InstanceNotRescuable fault; it can be rescued again from ERROR."""
    states, runtime, _ = machine
    future = states.rescue(SPEC.id, RescueRequest("secret", "image"), fails=True)
    with pytest.raises(Exception, match="cannot be rescued: Driver Error"):
        future.result(timeout=5)
    record = states.store.get(SPEC.id)
    assert record is not None and (record.status, record.task_state) == ("ERROR", None)
    assert record.power_state == st.SHUTDOWN and record.fault is not None
    assert record.fault["code"] == 400
    assert record.fault["message"].startswith(f"Instance {SPEC.id} cannot be rescued: Driver")
    assert runtime.shutdowns == 1 and runtime.requests == [] and runtime.announced == []
    states.rescue(SPEC.id, RescueRequest("secret", "image")).result(timeout=5)
    record = states.store.get(SPEC.id)
    assert record is not None and record.status == "RESCUE"


def test_disk_writes_stay_in_the_guest_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    (root / "etc/ssh").mkdir(parents=True)
    outside.mkdir()
    (root / "etc/linked").symlink_to(outside)
    (root / "etc/ssh/final").symlink_to(outside / "target")
    me = {"uid": os.getuid(), "gid": os.getgid()}

    write_file(root, GuestFile("/etc/ssh/sshd_config.d/port.conf", "Port 2222\n", 0o600, **me))
    written = root / "etc/ssh/sshd_config.d/port.conf"
    assert written.read_text() == "Port 2222\n" and written.stat().st_mode & 0o777 == 0o600
    write_file(root, GuestFile("/etc/ssh/final", "replaced\n", **me))
    assert not (root / "etc/ssh/final").is_symlink() and not (outside / "target").exists()
    for path in ("/etc/linked/x", "/etc/ssh/final/x"):
        with pytest.raises(InvalidInputError, match="not a directory of the guest"):
            write_file(root, GuestFile(path, "x", **me))
    for path in ("/etc/../x", "etc/x", "/", "/etc/./x"):
        with pytest.raises(InvalidInputError):
            write_file(root, GuestFile(path, "x", **me))
    assert list(outside.iterdir()) == []
    assert sorted(p.name for p in (root / "etc/ssh").iterdir()) == ["final", "sshd_config.d"]


def test_sshd_ports_from_its_effective_configuration() -> None:
    assert effective_ports("port 22\nlistenaddress [::]:22\nlistenaddress 0.0.0.0:22\n") == [22]
    assert effective_ports("port 2222\nport 2200\nlistenaddress 0.0.0.0:2222\n") == [2222]
    assert effective_ports("port 2222\nport 2200\n") == [2222, 2200]
    assert effective_ports("listenaddress 127.0.0.1:2022\nlistenaddress [::1]:2022\n") == [2022]
    assert effective_ports("") == [22]


def test_a_console_read_never_waits_behind_other_instances_operations(tmp_path: Path) -> None:
    """With every operation thread busy (a rescue that takes its time), the console is still
    read at once, as nova's compute node answers it (50 rescues at once made the fleet's
    console reads wait seconds, long enough to miss a rescue's host-key block)."""
    store = ServerStore(tmp_path / "servers.json")
    store.add(ServerRecord(SPEC, "image", "1", vm_state=st.ACTIVE, task_state=None))
    runtime = FakeRuntime(store)
    runtime.rescuing.clear()
    states = Machine(runtime, store, lambda: 0.0, workers=1)  # type: ignore[arg-type]
    try:
        rescue = states.rescue(SPEC.id, RescueRequest("secret", "image"))
        assert states.console_output(SPEC, None).result(timeout=2) == "login: \n"
        assert not rescue.done()  # the only operation thread was busy all along
    finally:
        runtime.rescuing.set()
        states.stop()
