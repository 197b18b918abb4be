"""The lab's OVH API (``/ovh/1.0``) and the ``ovh-vps`` backend together, without root: the
lab daemon's app with a fake runtime, served by uvicorn on a free port, reached by the real
python-ovh client through cloudrescue's backend (``open_ovh_vps`` on an ovh.conf as ``lab up``
writes it)."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import uvicorn

from cloudrescue.cloud.ovh_vps import OvhVpsCloud, open_ovh_vps
from cloudrescue.errors import CloudError, NotFoundError
from cloudrescue.lab import ovhconf
from cloudrescue.lab.api import store as st
from cloudrescue.lab.api.app import create_app
from cloudrescue.lab.api.auth import Identity
from cloudrescue.lab.api.faults import Faults
from cloudrescue.lab.api.service import LabService
from cloudrescue.lab.disk_files import GuestFile
from cloudrescue.lab.model import BootOutcome, InstanceSpec, LabConfig, RescueRequest

SCHEMAS = Path(__file__).resolve().parent / "samples" / "ovh"  # the published OpenAPI documents


class FakeRuntime:
    """Every runtime call succeeds at once; rescues are recorded."""

    def __init__(self) -> None:
        self.rescues: list[tuple[str, RescueRequest]] = []
        self.unrescues: list[str] = []

    def provision(self, spec: InstanceSpec) -> None:
        return None

    def boot(self, spec: InstanceSpec) -> BootOutcome:
        return "running"

    def shutdown(self, spec: InstanceSpec) -> None:
        return None

    def rescue(self, spec: InstanceSpec, request: RescueRequest) -> None:
        self.rescues.append((spec.name, request))

    def unrescue(self, spec: InstanceSpec) -> BootOutcome:
        self.unrescues.append(spec.name)
        return "running"

    def console_output(self, spec: InstanceSpec, length: int | None) -> str:
        return ""

    def break_instance(self, spec: InstanceSpec, scenario: str) -> str:
        return scenario

    def write_files(self, spec: InstanceSpec, files: list[GuestFile]) -> str:
        return ""

    def announce_host_keys(self, spec: InstanceSpec) -> bool:
        return False

    def cut_ssh(self, spec: InstanceSpec) -> int:
        return 0

    def destroy(self, spec: InstanceSpec) -> None:
        return None


@dataclass
class OvhLab:
    service: LabService
    runtime: FakeRuntime
    conf: Path
    endpoint: str

    def add(self, name: str) -> str:
        """A running instance (VPS) named ``name``; its address."""
        record = self.service.new_record(name=name)
        with self.service.store.edit(record.id) as made:
            made.vm_state, made.task_state, made.power_state = st.ACTIVE, None, st.RUNNING
        return record.spec.address

    def backend(self, conf: Path | None = None) -> OvhVpsCloud:
        return open_ovh_vps(config_file=conf or self.conf, poll_interval=0.05)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def ovh_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OvhLab]:
    state = tmp_path_factory.mktemp("ovh-lab")
    port = _free_port()
    config = LabConfig("0a0b0c", str(state), port, "crl0a0b0c", "10.213.250.0/24", "10.213.250.1")
    config.transition_delay = 0.0
    account = ovhconf.OvhAccount.generate()
    conf = state / "ovh.conf"
    ovhconf.write(conf, account, ovhconf.endpoint_url(port))
    runtime = FakeRuntime()
    identity = Identity("0a0b0c", "admin", "secret", "admin")
    service = LabService(
        config, runtime, identity, "token", initial_instances=0, ovh_account=account
    )
    server = uvicorn.Server(
        uvicorn.Config(create_app(service), host="127.0.0.1", port=port, log_config=None)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the lab app did not start"
        time.sleep(0.02)
    try:
        yield OvhLab(service, runtime, conf, ovhconf.endpoint_url(port))
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_ovh_conf_is_python_ovhs_format_with_the_labs_url(ovh_lab: OvhLab) -> None:
    text = ovh_lab.conf.read_text()
    assert f"[default]\nendpoint = {ovh_lab.endpoint}\n" in text
    assert f"[{ovh_lab.endpoint}]\napplication_key = " in text
    assert ovh_lab.conf.stat().st_mode & 0o777 == 0o600
    assert ovhconf.read(ovh_lab.conf) == ovh_lab.service.ovh.account


def test_signed_requests_are_checked(ovh_lab: OvhLab) -> None:
    """python-ovh's ``$1$`` signature passes; a wrong one, an old timestamp, an unknown
    application or consumer key are refused with OVHcloud's error codes."""
    ovh_lab.add("vps-sig")
    assert "vps-sig" in ovh_lab.backend()._client.get("/vps")
    account = ovh_lab.service.ovh.account
    url = f"{ovh_lab.endpoint}/vps"
    now = str(int(requests.get(f"{ovh_lab.endpoint}/auth/time", timeout=5).json()))

    def call(secret: str, stamp: str, key: str = account.application_key) -> requests.Response:
        text = "+".join([secret, account.consumer_key, "GET", url, "", stamp])
        digest = hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()
        headers = {
            "X-Ovh-Application": key,
            "X-Ovh-Consumer": account.consumer_key,
            "X-Ovh-Timestamp": stamp,
            "X-Ovh-Signature": "$1$" + digest,
        }
        return requests.get(url, headers=headers, timeout=5)

    assert call(account.application_secret, now).status_code == 200
    wrong = call("not-the-secret", now)
    assert (wrong.status_code, wrong.json()["errorCode"]) == (400, "INVALID_SIGNATURE")
    old = call(account.application_secret, str(int(now) - 3600))
    assert (old.status_code, old.json()["errorCode"]) == (400, "QUERY_TIME_OUT")
    stranger = call(account.application_secret, now, key="someone-else")
    assert (stranger.status_code, stranger.json()["errorCode"]) == (403, "INVALID_KEY")


def test_wrong_application_secret_is_an_auth_error_and_changes_nothing(
    ovh_lab: OvhLab, tmp_path: Path
) -> None:
    ovh_lab.add("vps-secret")
    wrong = tmp_path / "ovh.conf"
    account = ovh_lab.service.ovh.account
    forged = ovhconf.OvhAccount(account.application_key, "0" * 32, account.consumer_key)
    ovhconf.write(wrong, forged, ovh_lab.endpoint)
    with pytest.raises(CloudError, match="authentication failed: the request signature was "
                       r"refused \(check the application secret\)") as caught:  # fmt: skip
        ovh_lab.backend(wrong).find_server("vps-secret")
    assert caught.value.exit_status == 5
    assert "0" * 32 not in str(caught.value.message)
    assert ovh_lab.backend().get_server("vps-secret").status == "ACTIVE"


def test_rescue_through_netboot_and_the_service_email(ovh_lab: OvhLab) -> None:
    """Netboot rescue + reboot rescues the instance with a password the lab made; the
    backend reads it from the new e-mail; netboot local + reboot unrescues."""
    address = ovh_lab.add("vps-r")
    backend = ovh_lab.backend()
    server = backend.find_server("vps-r")
    assert (server.status, server.task_state, server.addresses[0].ip) == ("ACTIVE", None, address)
    started = backend.rescue(server, admin_password="not-sent", image=None)
    [request] = [asked for name, asked in ovh_lab.runtime.rescues if name == "vps-r"]
    assert started.admin_password == request.admin_password != "not-sent"
    assert backend.get_server("vps-r").status == "RESCUE"
    vps = backend._client.get("/vps/vps-r")
    assert (vps["netbootMode"], vps["state"]) == ("rescue", "rescued")
    backend.unrescue("vps-r")
    after = backend._client.get("/vps/vps-r")
    assert (after["netbootMode"], after["state"]) == ("local", "running")
    assert "vps-r" in ovh_lab.runtime.unrescues
    assert backend.get_server("vps-r").status == "ACTIVE"


def test_a_reboot_task_ending_in_error_sets_the_vps_back_to_local(ovh_lab: OvhLab) -> None:
    ovh_lab.add("vps-err")
    ovh_lab.service.faults.merge(Faults.model_validate({"ovh_reboot_fails": ["vps-err"]}))
    backend = ovh_lab.backend()
    try:
        with pytest.raises(CloudError, match=r"VPS vps-err failed: its task \d+ is error"):
            backend.rescue(backend.find_server("vps-err"), admin_password="x", image=None)
    finally:
        ovh_lab.service.faults.merge(Faults.model_validate({"ovh_reboot_fails": None}))
    vps = backend._client.get("/vps/vps-err")
    assert (vps["netbootMode"], vps["state"]) == ("local", "running")
    assert not [r for r in ovh_lab.runtime.rescues if r[0] == "vps-err"]


def test_unknown_vps_and_consoles(ovh_lab: OvhLab) -> None:
    ovh_lab.add("vps-c")
    backend = ovh_lab.backend()
    with pytest.raises(NotFoundError, match="no VPS named 'nope'"):
        backend.find_server("nope")
    url = backend.console_url("vps-c")
    assert url.startswith(f"http://127.0.0.1:{ovh_lab.service.config.api_port}/vnc_auto.html?")
    vnc = backend._client.post("/vps/vps-c/openConsoleAccess", protocol="VNCOverWebSocket")
    assert set(vnc) == {"host", "port", "password"}
    with pytest.raises(CloudError, match="no console log"):
        backend.console_output("vps-c")


def test_answers_have_the_published_schemas_shapes(ovh_lab: OvhLab) -> None:
    """Every field of the lab's VPS, task and e-mail answers is one the published schema
    declares, with an allowed value for its enums."""
    schemas: dict[str, Any] = json.loads((SCHEMAS / "vps.json").read_text())["components"][
        "schemas"
    ]
    me = json.loads((SCHEMAS / "me-notification-email-and-sshkey.json").read_text())
    ovh_lab.add("vps-shape")
    client = ovh_lab.backend()._client
    vps = client.get("/vps/vps-shape")
    declared = schemas["vps.VPSWithIAM"]["properties"]
    assert set(vps) <= set(declared)
    assert vps["state"] in schemas["vps.VpsStateEnum"]["enum"]
    assert vps["netbootMode"] in schemas["vps.VpsNetbootEnum"]["enum"]
    assert set(vps["model"]) <= set(schemas["vps.Model"]["properties"])
    task = client.post("/vps/vps-shape/reboot")
    assert set(task) == set(schemas["vps.Task"]["properties"])
    assert task["type"] in schemas["vps.TaskTypeEnum"]["enum"]
    assert task["state"] in schemas["vps.TaskStateEnum"]["enum"]
    [first, *_] = client.get("/me/notification/email/history")
    mail = client.get(f"/me/notification/email/history/{first}")
    mail_schema = me["components"]["schemas"]["nichandle.EmailNotification"]
    assert set(mail) == set(mail_schema["properties"])
    while client.get(f"/vps/vps-shape/tasks/{task['id']}")["state"] != "done":
        time.sleep(0.05)
