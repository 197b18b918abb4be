"""The lab's OVH API (``/ovh/1.0``) and the ``ovh-vps`` backend together, without root: the
lab daemon's app with a fake runtime, served by uvicorn on a free port, reached by the real
python-ovh client through cloudrescue's backend (``open_ovh_vps`` on an ovh.conf as ``lab up``
writes it)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import uvicorn

from cloudrescue.cloud.ovh_vps import OvhVpsCloud, api_errors, open_ovh_vps
from cloudrescue.errors import CloudError, CloudTimeoutError, NotFoundError
from cloudrescue.lab import ovhconf
from cloudrescue.lab.api import store as st
from cloudrescue.lab.api.app import create_app
from cloudrescue.lab.api.auth import Identity
from cloudrescue.lab.api.faults import Faults
from cloudrescue.lab.api.service import LabService
from cloudrescue.lab.disk_files import GuestFile
from cloudrescue.lab.model import BootOutcome, InstanceSpec, LabConfig, RescueRequest
from tests.piped import run_main

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


CLOUDRESCUE = str(Path(sys.executable).with_name("cloudrescue"))


def _without_consumer_key(ovh_lab: OvhLab, path: Path) -> Path:
    """An ovh.conf with the lab's endpoint and application key and secret only."""
    account = ovh_lab.service.ovh.account
    path.write_text(f"[default]\nendpoint = {ovh_lab.endpoint}\n\n[{ovh_lab.endpoint}]\n"
                    f"application_key = {account.application_key}\n"
                    f"application_secret = {account.application_secret}\n"
                    f"api_rate = {ovhconf.LAB_API_RATE}\n")  # fmt: skip
    return path


def login(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``cloudrescue ovh login ARGS`` as a user runs it."""
    return subprocess.run([CLOUDRESCUE, "ovh", "login", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip


def test_ovh_login_asks_a_limited_consumer_key_that_works_once_validated(
    ovh_lab: OvhLab, tmp_path: Path
) -> None:
    """``cloudrescue ovh login --write FILE`` (a real process): the validation URL on
    stdout, the key in FILE (0600) and nowhere in the output; refused until the URL is
    opened, then the VPS calls work and nothing else does."""
    ovh_lab.add("vps-login")
    conf = _without_consumer_key(ovh_lab, tmp_path / "app.conf")
    mine = tmp_path / "mine.conf"
    env = {name: value for name, value in os.environ.items() if not name.startswith("OVH_")}
    env.update(HOME=str(tmp_path), CLOUDRESCUE_OVH_CONFIG=str(conf))
    done = login(env, tmp_path, "--write", str(mine))
    assert done.returncode == 0, done.stderr
    [url] = done.stdout.splitlines()
    assert url.startswith(f"http://127.0.0.1:{ovh_lab.service.config.api_port}/ovh/auth/?")
    assert "GET /vps/*, PUT /vps/*, POST /vps/*" in done.stderr and str(mine) in done.stderr
    assert mine.stat().st_mode & 0o777 == 0o600
    key = ovhconf.read_consumer_key(mine, ovh_lab.endpoint)
    assert key in ovh_lab.service.ovh.consumers and key not in done.stdout + done.stderr
    combined = tmp_path / "combined.conf"
    combined.write_text(conf.read_text() + f"consumer_key = {key}\n")
    with pytest.raises(CloudError, match="consumer key is unknown or not validated") as raised:
        ovh_lab.backend(combined).find_server("vps-login")
    assert raised.value.exit_status == 5
    assert requests.get(url, timeout=5).status_code == 200  # the owner validates it
    backend = ovh_lab.backend(combined)
    assert backend.find_server("vps-login").status == "ACTIVE"
    assert backend.console_url("vps-login").startswith("http://127.0.0.1:")
    with pytest.raises(CloudError, match="not allowed this call"), api_errors("me"):
        backend._client.get("/me")
    with pytest.raises(CloudError, match="not allowed this call"), api_errors("delete"):
        backend._client.delete("/vps/vps-login/ips/10.0.0.1")
    shown = login(env, tmp_path, "--show-consumer-key")
    assert shown.returncode == 0, shown.stderr
    assert re.fullmatch(r"http://\S+\nconsumer_key = [0-9a-f]{32}\n", shown.stdout)
    status, out, err = run_main("ovh", "login")  # refused before anything is read or asked
    assert (status, out) == (2, "") and err.startswith("cloudrescue: error: say where")


def test_the_secret_link_email_and_its_one_time_page(ovh_lab: OvhLab) -> None:
    """The lab's other e-mail form: a link to a page that shows the password once; the
    backend follows it (the API's own origin) and gets the password the rescue took."""
    ovh_lab.add("vps-link")
    ovh_lab.service.faults.merge(Faults.model_validate({"ovh_rescue_email_link": ["vps-link"]}))
    backend = ovh_lab.backend()
    try:
        started = backend.rescue(backend.find_server("vps-link"), admin_password="x", image=None)
    finally:
        ovh_lab.service.faults.merge(Faults.model_validate({"ovh_rescue_email_link": None}))
    [request] = [asked for name, asked in ovh_lab.runtime.rescues if name == "vps-link"]
    assert started.admin_password == request.admin_password
    client = backend._client
    newest = max(client.get("/me/notification/email/history"))
    body = client.get(f"/me/notification/email/history/{newest}")["body"]
    assert request.admin_password not in body and "une seule fois" in body
    link = re.search(r"http://\S+", body)
    assert link is not None and requests.get(link.group(0), timeout=5).status_code == 404  # once
    backend.unrescue("vps-link")


def test_no_rescue_email_in_time_sets_the_vps_back_to_local(
    ovh_lab: OvhLab, tmp_path: Path
) -> None:
    ovh_lab.add("vps-mute")
    conf = tmp_path / "ovh.conf"
    conf.write_text(ovh_lab.conf.read_text() + "rescue_email_timeout = 1\n")
    ovh_lab.service.faults.merge(Faults.model_validate({"ovh_no_rescue_email": ["vps-mute"]}))
    backend = ovh_lab.backend(conf)
    try:
        with pytest.raises(CloudTimeoutError, match="no rescue e-mail for VPS vps-mute arrived "
                           "within 1 s") as raised:  # fmt: skip
            backend.rescue(backend.find_server("vps-mute"), admin_password="x", image=None)
    finally:
        ovh_lab.service.faults.merge(Faults.model_validate({"ovh_no_rescue_email": None}))
    assert raised.value.exit_status == 6
    assert [name for name, _ in ovh_lab.runtime.rescues].count("vps-mute") == 1
    assert "vps-mute" in ovh_lab.runtime.unrescues  # rebooted out of the rescue it reached
    vps = backend._client.get("/vps/vps-mute")
    assert (vps["netbootMode"], vps["state"]) == ("local", "running")


def test_429_answers_of_the_ovh_api_are_waited_out(ovh_lab: OvhLab) -> None:
    """The lab's rate-limit fault hits its OVH API too: the request is sent again after the
    ``Retry-After`` it carries, and succeeds."""
    ovh_lab.add("vps-429")
    backend = ovh_lab.backend()
    limit = {"count": 2, "retry_after": 1, "path_regex": "/ovh/1.0/vps/vps-429$"}
    fault = {"api_rate_limit": limit}
    ovh_lab.service.faults.merge(Faults.model_validate(fault))
    started = time.monotonic()
    try:
        assert backend.get_server("vps-429").status == "ACTIVE"
    finally:
        left = ovh_lab.service.faults.current().get("api_rate_limit")
        ovh_lab.service.faults.merge(Faults.model_validate({"api_rate_limit": None}))
    assert left is None  # both 429s were answered
    assert time.monotonic() - started >= 2.0
    refused = requests.get(f"{ovh_lab.endpoint}/vps", timeout=5)  # unsigned: still OVH's shape
    assert refused.status_code == 403 and refused.json()["errorCode"] == "INVALID_KEY"


def test_console_url_vnc(ovh_lab: OvhLab, tmp_path: Path) -> None:
    """``console url --vnc`` (real processes): the wss:// URL on stdout, the password only
    with --show-password."""
    ovh_lab.add("vps-vnc")
    env = {name: value for name, value in os.environ.items() if not name.startswith("OVH_")}
    env.update(HOME=str(tmp_path), CLOUDRESCUE_OVH_CONFIG=str(ovh_lab.conf))
    base = [CLOUDRESCUE, "--provider", "ovh-vps", "console", "url", "vps-vnc", "--vnc"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*base, *args], env=env, cwd=tmp_path, capture_output=True,
                              text=True, timeout=60, check=False)  # fmt: skip

    port = ovh_lab.service.config.api_port
    plain = run()
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout == f"wss://127.0.0.1:{port}\n" and "--show-password" in plain.stderr
    shown = run("--show-password", "-f", "json")
    assert shown.returncode == 0, shown.stderr
    record = json.loads(shown.stdout)
    assert {k: v for k, v in record.items() if k != "password"} == {
        "instance": "vps-vnc", "protocol": "VNCOverWebSocket", "host": "127.0.0.1",
        "port": port, "url": f"wss://127.0.0.1:{port}",
    }  # fmt: skip
    assert isinstance(record["password"], str) and len(record["password"]) >= 8
