"""The admin API (/lab/v1), injected faults, and a daemon restart, on a real lab."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import openstack
import paramiko
import pytest
import requests
from openstack import exceptions as sdk_exceptions

from .api_harness import CLOUD, ApiLab, rescue_ssh, shared_lab

pytestmark = pytest.mark.lab


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiLab]:
    yield from shared_lab(tmp_path_factory)


@pytest.fixture()
def faults(lab: ApiLab) -> Iterator[ApiLab]:
    """Clears every fault after the test."""
    yield lab
    assert lab.admin("DELETE", "/faults").json() == {}


@pytest.fixture()
def conn(lab: ApiLab, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(lab.clouds_yaml))
    return openstack.connect(cloud=CLOUD)


def test_admin_needs_its_token(lab: ApiLab) -> None:
    for headers in ({}, {"X-Lab-Token": "wrong"}):
        answer = requests.get(f"{lab.endpoint}/lab/v1/health", headers=headers, timeout=10)
        assert answer.status_code == 401 and "X-Lab-Token" in answer.json()["error"]


def test_health_and_instance_views(lab: ApiLab) -> None:
    assert lab.admin("GET", "/health").json() == {"ready": True, "instances": 2}
    views = {view["name"]: view for view in lab.admin("GET", "/instances").json()["instances"]}
    first = views["lab-1"]
    assert first["index"] == 1 and first["status"] == "ACTIVE" and first["task_state"] is None
    assert first["user"] == "debian" and first["volume_id"] is None
    assert first["console_log"] == str(lab.layout.instance(first["id"]).console)
    assert first["mac"].startswith("fa:16:3e:")
    assert lab.admin("GET", "/instances/nope/cut-ssh").status_code == 405
    assert lab.admin("POST", "/instances/nope/cut-ssh").status_code == 404
    assert lab.admin("POST", "/instances/lab-1/cut-ssh").json()["cut"] >= 0


def test_break_is_refused_in_rescue(lab: ApiLab) -> None:
    sid = lab.server("lab-1")["id"]
    rescue = lab.compute("POST", f"/servers/{sid}/action", json={"rescue": None})
    assert rescue.status_code == 200
    lab.wait_for(sid, "RESCUE")
    try:
        refused = lab.admin("POST", "/instances/lab-1/break", json={"scenario": "fstab"})
        assert refused.status_code == 409
    finally:
        lab.compute("POST", f"/servers/{sid}/action", json={"unrescue": None})
        lab.wait_for(sid, "ACTIVE")
    malformed = lab.admin("POST", "/instances/lab-1/break", json={"scenario": 3})
    assert malformed.status_code == 400


def test_break_leaves_a_broken_guest_active(lab: ApiLab) -> None:
    added = lab.admin("POST", "/instances", json={"name": "lab-broken"})
    assert added.status_code == 201, added.text
    sid = added.json()["instance"]["id"]
    try:
        broken = lab.admin("POST", "/instances/lab-broken/break", json={"scenario": "fstab"})
        assert broken.status_code == 200, broken.text
        assert broken.json()["instance"] == sid and broken.json()["scenario"] == "fstab"
        assert broken.json()["detail"]
        server = lab.server(sid)
        assert server["status"] == "ACTIVE" and server["OS-EXT-STS:power_state"] == 1
        console = lab.compute(
            "POST", f"/servers/{sid}/action", json={"os-getConsoleOutput": {}}
        ).json()["output"]
        assert "You are in emergency mode" in console
        unknown = lab.admin("POST", "/instances/lab-broken/break", json={"scenario": "nope"})
        assert unknown.status_code == 400 and "unknown scenario" in unknown.json()["error"]
        assert lab.server(sid)["status"] == "ACTIVE"
    finally:
        assert lab.admin("DELETE", "/instances/lab-broken").status_code == 204
    assert lab.admin("DELETE", "/instances/lab-broken").status_code == 404


def test_names_may_repeat_but_refs_must_be_unambiguous(lab: ApiLab) -> None:
    ids = [lab.admin("POST", "/instances", json={"name": "twin"}).json()["instance"]["id"]]
    ids.append(lab.admin("POST", "/instances", json={"name": "twin"}).json()["instance"]["id"])
    try:
        ambiguous = lab.admin("POST", "/instances/twin/cut-ssh")
        assert ambiguous.status_code == 409
        assert all(sid in ambiguous.json()["error"] for sid in ids)
        listed = lab.compute("GET", "/servers", params={"name": "^twin$"}).json()["servers"]
        assert sorted(server["id"] for server in listed) == sorted(ids)
    finally:
        for sid in ids:
            assert lab.admin("DELETE", f"/instances/{sid}").status_code == 204


def test_api_error_fault(faults: ApiLab, conn: Any) -> None:
    put = faults.admin(
        "PUT",
        "/faults",
        json={"api_error": {"status": 503, "count": 1, "method": "GET", "path_regex": "/detail$"}},
    )
    assert put.json()["api_error"]["count"] == 1
    with pytest.raises(sdk_exceptions.HttpException) as raised:
        list(conn.compute.servers(details=True))
    assert raised.value.status_code == 503
    assert "api_error" not in faults.admin("GET", "/faults").json()
    assert len(list(conn.compute.servers(details=True))) >= 2
    faults.admin("PUT", "/faults", json={"api_error": {"status": 500, "path_regex": "/flavors"}})
    for _ in range(2):
        answer = faults.compute("GET", "/flavors")
        assert answer.status_code == 500 and answer.json()["computeFault"]["code"] == 500
    assert faults.admin("GET", "/health").status_code == 200


def test_api_stall_fault(faults: ApiLab) -> None:
    faults.admin("PUT", "/faults", json={"api_stall": {"seconds": 2, "path_regex": "/flavors$"}})
    took: dict[str, float] = {}

    def stalled() -> None:
        started = time.monotonic()
        assert faults.compute("GET", "/flavors").status_code == 200
        took["stalled"] = time.monotonic() - started

    thread = threading.Thread(target=stalled)
    thread.start()
    time.sleep(0.3)
    started = time.monotonic()
    assert faults.compute("GET", "/servers").status_code == 200
    assert time.monotonic() - started < 1.5
    thread.join()
    assert took["stalled"] >= 2
    faults.admin("DELETE", "/faults")
    started = time.monotonic()
    faults.compute("GET", "/flavors")
    assert time.monotonic() - started < 1.5


def test_transition_delay_and_merge(faults: ApiLab) -> None:
    faults.admin("PUT", "/faults", json={"transition_delay": 3, "forge_rescue_host_keys": True})
    merged = faults.admin("PUT", "/faults", json={"forge_rescue_host_keys": None}).json()
    assert merged == {"transition_delay": 3.0}
    sid = faults.server("lab-2")["id"]
    faults.compute("POST", f"/servers/{sid}/action", json={"os-stop": None})
    time.sleep(2)
    assert faults.server(sid)["OS-EXT-STS:task_state"] == "powering-off"
    faults.wait_for(sid, "SHUTOFF")
    faults.admin("DELETE", "/faults")
    faults.compute("POST", f"/servers/{sid}/action", json={"os-start": None})
    faults.wait_for(sid, "ACTIVE")
    assert faults.admin("PUT", "/faults", json={"api_error": {"status": 404}}).status_code == 400


def test_a_fault_can_hit_one_server_action(faults: ApiLab) -> None:
    """``action`` picks the POST /action requests by what they ask: a console read passes
    (its body still reaches nova), the stop is refused, once."""
    error = {"status": 500, "count": 1, "method": "POST", "action": "os-stop"}
    faults.admin("PUT", "/faults", json={"api_error": error})
    sid = faults.server("lab-2")["id"]
    console = faults.compute(
        "POST", f"/servers/{sid}/action", json={"os-getConsoleOutput": {"length": 1}}
    )
    assert console.ok and console.json()["output"].count("\n") <= 1
    stop = faults.compute("POST", f"/servers/{sid}/action", json={"os-stop": None})
    assert stop.status_code == 500
    assert faults.admin("GET", "/faults").json() == {}  # taken
    assert faults.server(sid)["status"] == "ACTIVE"  # not applied


def test_forge_rescue_host_keys_fault(faults: ApiLab) -> None:
    faults.admin("PUT", "/faults", json={"forge_rescue_host_keys": True})
    sid = faults.server("lab-1")["id"]
    rescue = {"rescue": {"adminPass": "forge-Rescue-1"}}
    assert faults.compute("POST", f"/servers/{sid}/action", json=rescue).ok
    try:
        server = faults.wait_for(sid, "RESCUE")
        announced = faults.rescue_host_keys(sid)
        address = server["addresses"]["lab-net"][0]["addr"]
        with pytest.raises(paramiko.BadHostKeyException):
            rescue_ssh(address, "forge-Rescue-1", announced, "true")
    finally:
        faults.compute("POST", f"/servers/{sid}/action", json={"unrescue": None})
        faults.wait_for(sid, "ACTIVE")
