"""What real clouds do that the lab models, on the shared lab over real HTTP.

A rescue's host-key block comes a while after RESCUE; a hostile guest prints host keys while it
shuts down; a proxy loses the answer of a request nova applied; an instance in ERROR is
recovered with a hard reboot or ``os-resetState``; metadata may change while a task runs; a
guest whose sshd listens on another port boots, and a boot that fails leaves nothing running.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openstack
import paramiko
import pytest
from openstack import exceptions as sdk_exceptions

from .api_harness import (
    ANNOUNCE_DELAY,
    BEGIN_FINGERPRINTS,
    BEGIN_KEYS,
    CLOUD,
    RESCUE_ANNOUNCED,
    RESCUE_BANNER,
    ApiLab,
    key_blocks,
    rescue_ssh,
    shared_lab,
)
from .labkit import key_login, ssh_client, tcp_open
from .test_api_openstackclient import openstack as osc

pytestmark = pytest.mark.lab

ANNOUNCE_FAULT = 2.5  # seconds (the lab's own is ANNOUNCE_DELAY), to see RESCUE well before
POLL = 0.1
PORT_CONF = "/etc/ssh/sshd_config.d/50-port.conf"


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiLab]:
    yield from shared_lab(tmp_path_factory)


@pytest.fixture(scope="module")
def sid(lab: ApiLab) -> Iterator[str]:
    """An instance of this module's own (lab-1 and lab-2 stay as other modules expect)."""
    added = lab.admin("POST", "/instances", json={"name": "lab-behaviour"})
    assert added.status_code == 201, added.text
    server_id = str(added.json()["instance"]["id"])
    yield server_id
    assert lab.admin("DELETE", f"/instances/{server_id}").status_code == 204


@pytest.fixture()
def faults(lab: ApiLab) -> Iterator[ApiLab]:
    yield lab
    lab.admin("DELETE", "/faults")


@pytest.fixture()
def conn(lab: ApiLab, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(lab.clouds_yaml))
    return openstack.connect(cloud=CLOUD)


def _action(lab: ApiLab, sid: str, body: dict[str, Any]) -> Any:
    return lab.compute("POST", f"/servers/{sid}/action", json=body)


def _until_status(lab: ApiLab, sid: str, status: str, timeout: float = 120) -> dict[str, Any]:
    """Poll fast until the status is ``status`` (task state or not)."""
    deadline = time.monotonic() + timeout
    while True:
        server = lab.server(sid)
        if server["status"] == status:
            return server
        assert time.monotonic() < deadline, f"{sid} stayed {server['status']}"
        time.sleep(POLL)


def _unrescue(lab: ApiLab, sid: str) -> None:
    if lab.server(sid)["status"] == "RESCUE":
        assert _action(lab, sid, {"unrescue": None}).status_code == 202
    lab.wait_for(sid, "ACTIVE")


def test_the_lab_up_settings_are_stored(lab: ApiLab) -> None:
    stored = json.loads(lab.layout.lab_json.read_text())
    assert stored["announce_delay"] == ANNOUNCE_DELAY == lab.config.announce_delay


@pytest.mark.parametrize("printed", ["fingerprints", "keys"])
def test_rescue_announces_its_keys_after_rescue_and_after_the_guest_s_lies(
    faults: ApiLab, sid: str, printed: str
) -> None:
    """RESCUE first, the rescue's block ``announce_delay`` later; what the guest printed while
    it shut down comes before both (a full forged announcement, or a bare keys block)."""
    lab = faults
    delay = ANNOUNCE_FAULT if printed == "fingerprints" else ANNOUNCE_DELAY  # fault or lab up's
    wanted: dict[str, Any] = {"guest_host_keys_at_shutdown": printed}
    if delay != ANNOUNCE_DELAY:
        wanted["announce_delay"] = delay
    lab.admin("PUT", "/faults", json=wanted)
    before = lab.console(sid)
    guest_keys = key_blocks(before)[-1]
    assert _action(lab, sid, {"rescue": {"adminPass": "late-Keys-1"}}).status_code == 200
    try:
        server = _until_status(lab, sid, "RESCUE")
        at_rescue = lab.console(sid)
        seen_rescue = time.monotonic()
        address = server["addresses"]["lab-net"][0]["addr"]
        assert tcp_open(address)  # the rescue's sshd answers before its keys are announced
        new = at_rescue[len(before) :]
        assert at_rescue.startswith(before) and RESCUE_BANNER in new
        assert RESCUE_ANNOUNCED not in new
        (lie,) = key_blocks(new)  # the guest's, printed while it shut down
        assert new.count(BEGIN_FINGERPRINTS) == (1 if printed == "fingerprints" else 0)
        assert new.index(BEGIN_KEYS) < new.index(RESCUE_BANNER)
        assert set(lie).isdisjoint(guest_keys)

        while RESCUE_ANNOUNCED not in (rescue_part := lab.console(sid)[len(at_rescue) :]):
            assert time.monotonic() - seen_rescue < delay + 10, "no block came"
            time.sleep(POLL)
        waited = time.monotonic() - seen_rescue
        assert delay - 0.5 <= waited <= delay + 5, waited
        assert rescue_part.count(BEGIN_FINGERPRINTS) == 1
        (announced,) = key_blocks(rescue_part)
        assert set(announced).isdisjoint(lie)
        assert rescue_ssh(address, "late-Keys-1", announced, "echo rescued") == "rescued\n"
        with pytest.raises(paramiko.BadHostKeyException):
            rescue_ssh(address, "late-Keys-1", lie, "true")
    finally:
        _unrescue(lab, sid)


def test_an_unrescue_before_the_announcement_cancels_it(faults: ApiLab, sid: str) -> None:
    faults.admin("PUT", "/faults", json={"announce_delay": 30})
    assert _action(faults, sid, {"rescue": None}).status_code == 200
    faults.wait_for(sid, "RESCUE")
    _unrescue(faults, sid)
    console = faults.console(sid)
    assert RESCUE_ANNOUNCED not in console.rsplit(RESCUE_BANNER, 1)[1]
    assert console.rstrip().endswith("login:")  # the guest booted again, nothing after it


def test_lost_responses_are_applied_and_metadata_changes_while_rescuing(
    faults: ApiLab, sid: str, conn: Any
) -> None:
    """A 504 after nova applied the request (rescue, metadata); metadata set and deleted while
    ``task_state=rescuing`` (nova checks only the vm_state), refused once RESCUE."""
    lab = faults
    lost = {"count": 1, "method": "POST", "path_regex": "/action$"}
    lab.admin("PUT", "/faults", json={"api_lost_response": lost, "transition_delay": 3})
    server = conn.compute.get_server(sid)
    with pytest.raises(sdk_exceptions.HttpException) as raised:
        conn.compute.rescue_server(server, admin_pass="lost-Answer-1")
    assert raised.value.status_code == 504
    assert "api_lost_response" not in lab.admin("GET", "/faults").json()
    rescuing = lab.server(sid)
    assert (rescuing["status"], rescuing["OS-EXT-STS:task_state"]) == ("ACTIVE", "rescuing")

    conn.compute.set_server_metadata(server, during="rescue", other="x")
    conn.compute.delete_server_metadata(server, ["other"])
    lost_meta = {"count": 1, "method": "PUT", "path_regex": "/metadata/"}
    lab.admin("PUT", "/faults", json={"api_lost_response": lost_meta})
    answer = lab.compute("PUT", f"/servers/{sid}/metadata/lost", json={"meta": {"lost": "yes"}})
    assert answer.status_code == 504 and "Gateway Time-out" in answer.text
    assert lab.server(sid)["OS-EXT-STS:task_state"] == "rescuing", "test too slow"
    assert lab.server(sid)["metadata"] == {"during": "rescue", "lost": "yes"}

    lab.wait_for(sid, "RESCUE")
    refused = lab.compute("PUT", f"/servers/{sid}/metadata/k", json={"meta": {"k": "v"}})
    assert refused.status_code == 409 and "vm_state rescued" in refused.text
    assert (
        rescue_ssh(
            rescuing["addresses"]["lab-net"][0]["addr"],
            "lost-Answer-1",
            lab.rescue_host_keys(sid),
            "echo applied",
        )
        == "applied\n"
    )
    lab.admin("DELETE", "/faults")
    _unrescue(lab, sid)
    conn.compute.delete_server_metadata(conn.compute.get_server(sid), ["during", "lost"])
    assert lab.server(sid)["metadata"] == {}


def _files(lab: ApiLab, sid: str, content: str) -> Any:
    return lab.admin(
        "POST", f"/instances/{sid}/files", json={"files": [{"path": PORT_CONF, "content": content}]}
    )


def _processes_of(lab: ApiLab, sid: str) -> list[str]:
    """Processes started for the instance (their argv names its plan.json)."""
    plan = str(lab.layout.instance(sid).plan)
    found = []
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if plan in argv:
            found.append(f"{proc.name}: {argv[:100]}")
    return found


def test_guest_on_another_port_boots_and_a_failed_boot_leaves_nothing(
    lab: ApiLab, sid: str
) -> None:
    address = lab.server(sid)["addresses"]["lab-net"][0]["addr"]
    key = lab.layout.lab_key
    moved = _files(lab, sid, "Port 2222\n")
    assert moved.status_code == 200, moved.text
    assert lab.server(sid)["status"] == "ACTIVE"
    assert not tcp_open(address, 22)
    assert key_login(address, "debian", key, port=2222) == "ok"
    client = ssh_client(address, "debian", key=key, port=2222)
    try:
        transport = client.get_transport()
        assert transport is not None
        served = transport.get_remote_server_key().get_base64()
        _, stdout, _ = client.exec_command("tr '\\0' ' ' < /proc/1/cmdline")
        pid_one = stdout.read().decode()
        assert "sshd" in pid_one and "python" not in pid_one  # the disk's own sshd is pid 1
    finally:
        client.close()
    assert any(served in line for line in key_blocks(lab.console(sid))[-1])

    broken = _files(lab, sid, "Port 2222\nListenAddress 192.0.2.1\n")  # sshd cannot bind
    assert broken.status_code == 500 and "listening" in broken.json()["error"]
    failed = lab.server(sid)
    assert failed["status"] == "ERROR" and "listening" in failed["fault"]["message"]
    assert _processes_of(lab, sid) == []

    repaired = _files(lab, sid, "Port 2222\n")  # nothing of the failed boot is in the way
    assert repaired.status_code == 200, repaired.text
    assert lab.server(sid)["status"] == "ACTIVE"
    assert key_login(address, "debian", key, port=2222) == "ok"

    refused = lab.admin(
        "POST", f"/instances/{sid}/files", json={"files": [{"path": "/etc/../x", "content": ""}]}
    )
    assert refused.status_code == 400
    back = _files(lab, sid, "# the default port\n")
    assert back.status_code == 200 and key_login(address, "debian", key) == "ok"


def test_error_is_recovered_by_a_hard_reboot_and_by_reset_state(
    lab: ApiLab, sid: str, conn: Any
) -> None:
    """``openstack server set --state`` (os-resetState, any state, no task state) and a hard
    reboot from ERROR (nova's ALLOW_HARD_REBOOT), through openstackclient and openstacksdk."""
    osc(lab, "server", "set", "--auto-approve", "--state", "error", sid)
    errored = lab.server(sid)
    assert (errored["status"], errored["OS-EXT-STS:task_state"]) == ("ERROR", None)
    refused = _action(lab, sid, {"reboot": {"type": "SOFT"}})
    assert refused.status_code == 409 and "vm_state error" in refused.text
    conn.compute.reboot_server(sid, "HARD")
    rebooting = lab.server(sid)  # nova shows ERROR (not HARD_REBOOT) until the reboot is done
    assert (rebooting["status"], rebooting["OS-EXT-STS:task_state"]) == ("ERROR", "rebooting_hard")
    assert _until_status(lab, sid, "ACTIVE")["OS-EXT-STS:task_state"] is None
    address = lab.server(sid)["addresses"]["lab-net"][0]["addr"]
    assert key_login(address, "debian", lab.layout.lab_key) == "ok"

    conn.compute.reset_server_state(sid, "error")
    assert conn.compute.get_server(sid).status == "ERROR"
    osc(lab, "server", "set", "--auto-approve", "--state", "active", sid)
    shown = conn.compute.get_server(sid)
    assert (shown.status, shown.vm_state, shown.task_state) == ("ACTIVE", "active", None)
    wrong = _action(lab, sid, {"os-resetState": {"state": "rescued"}})
    assert wrong.status_code == 400 and "is not one of ['active', 'error']" in wrong.text
