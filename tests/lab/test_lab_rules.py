"""Lab rules that need neither root nor a lab: fault shapes, when a rescue announces its host
keys (the state machine on a fake runtime), root-anchored disk writes, sshd's ports."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from cloudrescue.errors import InvalidInputError
from cloudrescue.lab.api import store as st
from cloudrescue.lab.api.app import proxy_error_page
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


class FakeRuntime:
    """Rescues instantly; records when the host keys were announced and the status then."""

    def __init__(self, store: ServerStore) -> None:
        self.store = store
        self.requests: list[RescueRequest] = []
        self.announced: list[tuple[float, str]] = []
        self.pending = False
        self.changed = threading.Event()

    def rescue(self, spec: InstanceSpec, request: RescueRequest) -> None:
        self.requests.append(request)
        self.pending = request.defer_host_keys

    def unrescue(self, spec: InstanceSpec) -> BootOutcome:
        self.pending = False
        return "running"

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


def test_rescue_announces_its_host_keys_after_rescue(
    machine: tuple[Machine, FakeRuntime, list[float]],
) -> None:
    states, runtime, _ = machine
    states.rescue(SPEC.id, RescueRequest("secret", "image")).result(timeout=5)
    done = time.monotonic()
    record = states.store.get(SPEC.id)
    assert record is not None and record.status == "RESCUE"
    assert runtime.requests[0].defer_host_keys and runtime.announced == []
    assert runtime.changed.wait(timeout=5)
    ((when, status),) = runtime.announced
    assert status == "RESCUE" and when - done >= 0.35


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
