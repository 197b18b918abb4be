"""The ``ovh-vps`` backend on a fake python-ovh client (injected, no network): the status it
shows, the rescue e-mail it reads (OVHcloud's wording, a new one only, this VPS's only), the
reboot task it follows; and the rescue workflow on a cloud without a console log."""

from __future__ import annotations

import io
import itertools
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
from ovh import exceptions as ovh_errors

from cloudrescue.cli.environment import Environment
from cloudrescue.cli.prompts import rescue_password_reader
from cloudrescue.cloud.ovh_login import with_consumer_key, write_consumer_key
from cloudrescue.cloud.ovh_mail import plain_text, rescue_credentials
from cloudrescue.cloud.ovh_vps import OvhVpsCloud, api_errors, ovh_settings, vps_status
from cloudrescue.cloud.recorded import open_recorded_cloud
from cloudrescue.errors import (
    CloudError,
    CloudTimeoutError,
    HostKeyError,
    InvalidInputError,
    WrongStateError,
)
from cloudrescue.journal import Journal
from cloudrescue.rescue import RescueSettings, RescueWorkflow
from tests.fakes import FakeClock, RecordingEvents
from tests.piped import piped, run_main
from tests.unit.test_rescue_workflow import Rig

FRENCH = """Bonjour,

Votre VPS vps-1a2b.vps.ovh.net vient d'être redémarré en mode rescue.

Vous pouvez dès à présent vous y connecter en SSH avec les identifiants suivants :

Adresse IP du VPS : 203.0.113.10
Nom d'utilisateur : root
Mot de passe : Xy7kP2qLm9

Cordialement,
Le support OVHcloud
"""
ENGLISH = (
    "Dear Customer,<br /><br />Your VPS vps-1a2b.vps.ovh.net has just been rebooted in rescue "
    "mode.<br />You can now connect to it with SSH:<br /><br />IP address: 203.0.113.10<br />"
    "Username: root<br />Password: p&amp;ss9<br />"
)


@pytest.mark.parametrize(
    ("netboot", "state", "pending", "shown"),
    [
        ("local", "running", False, ("ACTIVE", None)),
        ("local", "stopped", False, ("SHUTOFF", None)),
        ("rescue", "rescued", False, ("RESCUE", None)),
        ("local", "rescued", False, ("RESCUE", None)),  # netboot set back, not yet rebooted
        ("rescue", "running", False, ("RESCUE", None)),  # its next boot is the rescue's
        ("rescue", "rebooting", False, ("REBOOT", "rescuing")),
        ("local", "rebooting", False, ("REBOOT", "rebooting")),
        ("rescue", "running", True, ("ACTIVE", "rescuing")),  # this process is rescuing it
        ("local", "maintenance", False, ("MAINTENANCE", None)),
    ],
)
def test_status_mapping(
    netboot: str, state: str, pending: bool, shown: tuple[str, str | None]
) -> None:
    assert vps_status(netboot, state, rescue_pending=pending) == shown


def test_rescue_email_in_ovhclouds_wording() -> None:
    subject = "Redémarrage en mode rescue de votre VPS vps-1a2b.vps.ovh.net"
    found = rescue_credentials("vps-1a2b.vps.ovh.net", subject, FRENCH)
    assert found is not None
    assert (found.address, found.user, found.password) == ("203.0.113.10", "root", "Xy7kP2qLm9")
    assert "Xy7kP2qLm9" not in repr(found)
    english = rescue_credentials("vps-1a2b.vps.ovh.net", "Rescue mode", ENGLISH)
    assert english is not None and (english.user, english.password) == ("root", "p&ss9")
    assert "Username: root\n" in plain_text(ENGLISH)


def test_other_emails_are_not_rescue_emails() -> None:
    subject = "Redémarrage en mode rescue de votre VPS vps-1a2b.vps.ovh.net"
    assert rescue_credentials("vps-1a2", subject, FRENCH) is None  # a prefix of another name
    assert rescue_credentials("vps-1a2b.vps.ovh", subject, FRENCH) is None
    assert rescue_credentials("vps-9", subject, FRENCH) is None
    invoice = "Votre facture du VPS vps-1a2b.vps.ovh.net.\nMot de passe : none"
    assert rescue_credentials("vps-1a2b.vps.ovh.net", "Facture", invoice) is None
    no_password = FRENCH.replace("Mot de passe : Xy7kP2qLm9\n", "")
    assert rescue_credentials("vps-1a2b.vps.ovh.net", subject, no_password) is None


def _mail(service: str, password: str) -> dict[str, str]:
    return {
        "subject": f"Redémarrage en mode rescue de votre VPS {service}",
        "body": FRENCH.replace("vps-1a2b.vps.ovh.net", service).replace("Xy7kP2qLm9", password),
    }


class FakeOvh:
    """python-ovh's ``Client`` as the backend calls it, over one VPS ``vps-1``: netboot,
    reboot tasks (their states scripted by ``task_states``), the e-mail history."""

    def __init__(self, task_states: tuple[str, ...] = ("todo", "doing", "done")) -> None:
        self.vps: dict[str, Any] = {"name": "vps-1", "netbootMode": "local", "state": "running"}
        self.task_states = task_states
        self.tasks: dict[int, Any] = {}
        self.mails: dict[int, dict[str, str]] = {40: _mail("vps-1", "old-password")}
        self.on_reboot: Callable[[FakeOvh], None] = lambda ovh: ovh.deliver("vps-1", "new-one")
        self.calls: list[str] = []
        self._ids = itertools.count(41)

    def deliver(self, service: str, password: str) -> None:
        self.mails[next(self._ids)] = _mail(service, password)

    def get(self, _target: str, _need_auth: bool = True, **kwargs: Any) -> Any:
        self.calls.append(f"GET {_target}")
        if _target == "/vps":
            return ["vps-1"]
        if _target == "/vps/vps-1":
            return dict(self.vps)
        if _target == "/vps/vps-1/ips":
            return ["203.0.113.10"]
        if _target.startswith("/vps/vps-1/tasks/"):
            task = self.tasks[int(_target.rsplit("/", 1)[1])]
            task["state"] = next(task["states"], task["state"])
            if task["state"] == "done":
                self.vps["state"] = "rescued" if self.vps["netbootMode"] == "rescue" else "running"
                self.on_reboot(self)
            return {key: value for key, value in task.items() if key != "states"}
        if _target == "/me/notification/email/history":
            return list(self.mails)
        if _target.startswith("/me/notification/email/history/"):
            mail_id = int(_target.rsplit("/", 1)[1])
            return {"id": mail_id, "date": "2024-05-02T10:00:00+02:00", **self.mails[mail_id]}
        raise AssertionError(f"unexpected GET {_target}")

    def put(self, _target: str, _need_auth: bool = True, **kwargs: Any) -> Any:
        self.calls.append(f"PUT {_target} {kwargs}")
        self.vps.update(kwargs)

    def post(self, _target: str, _need_auth: bool = True, **kwargs: Any) -> Any:
        self.calls.append(f"POST {_target}")
        if _target == "/vps/vps-1/getConsoleUrl":
            return "https://compute.example:6080/vnc_auto.html?token=t"
        assert _target == "/vps/vps-1/reboot"
        task_id = 100 + len(self.tasks)
        states = iter(self.task_states)
        self.tasks[task_id] = {"id": task_id, "type": "rebootVm", "state": next(states),
                               "states": states, "progress": 0}  # fmt: skip
        return {"id": task_id, "type": "rebootVm", "state": self.tasks[task_id]["state"]}


def _cloud(ovh: FakeOvh, clock: FakeClock, **times: float) -> OvhVpsCloud:
    return OvhVpsCloud(ovh, "ovh-vps:test", clock=clock, sleep=clock.sleep, **times)


def test_rescue_takes_the_new_email_of_this_vps_only() -> None:
    """The e-mail of an earlier rescue and another VPS's new one are not taken."""
    ovh, clock = FakeOvh(), FakeClock()

    def two_mails(fake: FakeOvh) -> None:
        fake.deliver("vps-12", "someone-elses")
        fake.deliver("vps-1", "the-new-one")
        fake.on_reboot = lambda _fake: None

    ovh.on_reboot = two_mails
    cloud = _cloud(ovh, clock)
    server = cloud.find_server("vps-1")
    assert (server.status, server.addresses[0].ip) == ("ACTIVE", "203.0.113.10")
    started = cloud.rescue(server, admin_password="ignored", image=None)
    assert started.admin_password == "the-new-one"
    assert cloud.get_server("vps-1").status == "RESCUE"
    put = ovh.calls.index("PUT /vps/vps-1 {'netbootMode': 'rescue'}")
    assert put < ovh.calls.index("POST /vps/vps-1/reboot")
    assert ovh.calls.index("GET /me/notification/email/history") < put  # the baseline first
    cloud.unrescue("vps-1")
    assert (ovh.vps["netbootMode"], ovh.vps["state"]) == ("local", "running")
    assert cloud.get_server("vps-1").status == "ACTIVE"


@pytest.mark.parametrize("failed", ["error", "cancelled", "blocked"])
def test_a_failed_reboot_task_sets_the_netboot_back_to_local(failed: str) -> None:
    ovh, clock = FakeOvh(task_states=("todo", "doing", failed)), FakeClock()
    cloud = _cloud(ovh, clock)
    with pytest.raises(CloudError, match=f"reboot of VPS vps-1 failed: its task 100 is {failed}"):
        cloud.rescue(cloud.find_server("vps-1"), admin_password="x", image=None)
    assert (ovh.vps["netbootMode"], ovh.vps["state"]) == ("local", "running")
    assert ovh.calls.count("POST /vps/vps-1/reboot") == 1  # it never got into rescue


def test_no_rescue_email_in_time_reboots_it_back_to_local() -> None:
    ovh, clock = FakeOvh(), FakeClock()
    ovh.on_reboot = lambda _fake: None
    cloud = _cloud(ovh, clock, mail_timeout=30.0)
    with pytest.raises(CloudTimeoutError, match="no rescue e-mail for VPS vps-1 arrived within 30"):
        cloud.rescue(cloud.find_server("vps-1"), admin_password="x", image=None)
    assert (ovh.vps["netbootMode"], ovh.vps["state"]) == ("local", "running")
    assert ovh.calls.count("POST /vps/vps-1/reboot") == 2
    assert 30 <= clock.slept <= 45


def test_a_task_that_never_ends_times_out() -> None:
    ovh, clock = FakeOvh(task_states=("todo", "doing")), FakeClock()
    cloud = _cloud(ovh, clock, task_timeout=20.0)
    with pytest.raises(CloudTimeoutError, match=r"was not done within 20 s \(task 100 is doing\)"):
        cloud.unrescue("vps-1")


def test_what_a_vps_does_not_have() -> None:
    ovh, clock = FakeOvh(), FakeClock()
    cloud = _cloud(ovh, clock)
    assert not cloud.announces_host_keys
    with pytest.raises(CloudError, match="has no console log"):
        cloud.console_output("vps-1")
    assert cloud.console_url("vps-1").endswith("vnc_auto.html?token=t")
    with pytest.raises(InvalidInputError, match="no image to choose"):
        cloud.find_image("rescue-image")
    with pytest.raises(InvalidInputError, match="is not a VPS service name"):
        cloud.find_server("../me")
    assert [s.name for s in cloud.list_servers(name_regex="^vps-1$")] == ["vps-1"]
    assert cloud.list_servers(tags=("prod",)) == []
    assert cloud.list_servers(statuses=("RESCUE",)) == []
    cloud.set_marks("vps-1", {"cloudrescue:run": "r1"})
    cloud.clear_marks("vps-1", ("cloudrescue:run",))
    assert [call for call in ovh.calls if call.startswith(("PUT", "POST"))] == [
        "POST /vps/vps-1/getConsoleUrl"
    ]


def test_without_a_console_log_the_workflow_needs_trust_host_key(tmp_path: Path) -> None:
    """Refused before anything is asked of the cloud; with ``--trust-host-key`` no console
    is read, and the trusted fingerprint goes to the journal."""
    rig = Rig(tmp_path / "refused")
    rig.cloud.announces_host_keys = False
    with (
        pytest.raises(HostKeyError, match="shows no console log") as raised,
        rig.workflow().session(rig.server, command="test"),
    ):
        pytest.fail("the body must not run")
    assert raised.value.hint is not None and "--trust-host-key" in raised.value.hint
    assert rig.cloud.calls == [] and rig.states() == []
    trusting = Rig(tmp_path / "trusting", trust_host_key=True)
    trusting.cloud.announces_host_keys = False
    trusting.cloud.console_errors = 1000  # any console read would fail the session
    with trusting.workflow().session(trusting.server, command="test") as rescued:
        assert rescued.announced is None
        [entry] = trusting.journal.entries()
        assert "trusted on first use (--trust-host-key)" in entry.note
        assert rescued.host.host_key_fingerprint in entry.note
    assert trusting.status() == "ACTIVE/-"


LINK = "https://www.ovh.com/secret-service/?token=abc"


def _link_mail(service: str, link: str) -> dict[str, str]:
    body = FRENCH.replace("vps-1a2b.vps.ovh.net", service).replace(
        "Mot de passe : Xy7kP2qLm9\n",
        "Pour des raisons de sécurité, votre mot de passe n'est pas envoyé par e-mail. Il est "
        f"consultable une seule fois à l'adresse suivante :\n{link}\n",
    )
    return {"subject": f"Redémarrage en mode rescue de votre VPS {service}", "body": body}


class Pages:
    """The web as a secret link's page is fetched: each page once, and every URL asked."""

    def __init__(self, pages: dict[str, str]) -> None:
        self.pages = pages
        self.asked: list[str] = []

    def __call__(self, url: str) -> str:
        self.asked.append(url)
        page = self.pages.pop(url, None)
        if page is None:
            raise CloudError("the rescue e-mail's secret page answered HTTP 404")
        return page


def test_the_secret_link_form_of_the_rescue_email() -> None:
    """The e-mail without the password links to a one-time page: the backend opens it (an
    OVHcloud https page) and reads the password there; the link is no password."""
    found = rescue_credentials("vps-1", "Rescue", _link_mail("vps-1", LINK)["body"])
    assert found is not None and (found.password, found.link) == (None, LINK)
    html_mail = f"Rescue VPS vps-1<br/>Password: <a href=\"{LINK}&amp;x=1\">open</a><br/>"
    html_found = rescue_credentials("vps-1", "", html_mail)
    assert html_found is not None and html_found.link == f"{LINK}&x=1"
    bare = rescue_credentials("vps-1", "rescue", f"VPS vps-1\nMot de passe : {LINK}\n")
    assert bare is not None and (bare.password, bare.link) == (None, LINK)

    ovh, clock = FakeOvh(), FakeClock()
    ovh.on_reboot = lambda fake: (fake.mails.update({90: _link_mail("vps-1", LINK)}),
                                  setattr(fake, "on_reboot", lambda _f: None))  # fmt: skip
    pages = Pages({LINK: "<p>Mot de passe : <code>s3cr&amp;t</code></p>"})
    cloud = OvhVpsCloud(ovh, "ovh-vps:test", clock=clock, sleep=clock.sleep, fetch=pages)
    started = cloud.rescue(cloud.find_server("vps-1"), admin_password="x", image=None)
    assert started.admin_password == "s3cr&t" and pages.asked == [LINK]


@pytest.mark.parametrize(
    "link",
    [
        "http://www.ovh.com/secret-service/?token=abc",  # not https
        "https://www.ovh.com.evil.example/secret",
        "https://evil.example/?ovh.com",
        "https://user@www.ovh.com/secret",
        "https://www.ovh.com:8443/secret",
        "http://127.0.0.1:9999/ovh/secret-service/?token=abc",  # not the API's own origin
    ],
)
def test_a_secret_link_elsewhere_is_not_opened_and_the_vps_goes_back(link: str) -> None:
    ovh, clock = FakeOvh(), FakeClock()
    ovh.on_reboot = lambda fake: (fake.mails.update({90: _link_mail("vps-1", link)}),
                                  setattr(fake, "on_reboot", lambda _f: None))  # fmt: skip
    pages = Pages({link: "Mot de passe : stolen"})
    cloud = OvhVpsCloud(ovh, "ovh-vps:test", clock=clock, sleep=clock.sleep, fetch=pages,
                        origin="http://127.0.0.1:8774")  # fmt: skip
    with pytest.raises(CloudError, match="outside OVHcloud's domains") as raised:
        cloud.rescue(cloud.find_server("vps-1"), admin_password="x", image=None)
    assert raised.value.hint is not None and "--rescue-password-stdin" in raised.value.hint
    assert pages.asked == []
    assert (ovh.vps["netbootMode"], ovh.vps["state"]) == ("local", "running")


def test_the_labs_own_origin_and_a_page_without_password() -> None:
    link = "http://127.0.0.1:8774/ovh/secret-service/?token=t"
    ovh, clock = FakeOvh(), FakeClock()
    ovh.on_reboot = lambda fake: (fake.mails.update({90: _link_mail("vps-1", link)}),
                                  setattr(fake, "on_reboot", lambda _f: None))  # fmt: skip
    pages = Pages({link: "<p>Ce secret a déjà été consulté.</p>"})
    cloud = OvhVpsCloud(ovh, "ovh-vps:test", clock=clock, sleep=clock.sleep, fetch=pages,
                        origin="http://127.0.0.1:8774")  # fmt: skip
    with pytest.raises(CloudError, match="secret page of the rescue e-mail of VPS vps-1 shows no"):
        cloud.rescue(cloud.find_server("vps-1"), admin_password="x", image=None)
    assert pages.asked == [link] and ovh.vps["netbootMode"] == "local"


def test_rescue_password_from_the_user_reads_no_email() -> None:
    """``--rescue-password-stdin``: asked once the reboot into rescue is done; the service
    e-mails are never read (the consumer key may not be allowed them)."""
    ovh, clock = FakeOvh(), FakeClock()
    asked: list[tuple[str, str]] = []

    def given(service: str) -> str:
        asked.append((service, ovh.vps["state"]))
        return "typed-in"

    cloud = OvhVpsCloud(ovh, "ovh-vps:test", clock=clock, sleep=clock.sleep,
                        rescue_password=given)  # fmt: skip
    started = cloud.rescue(cloud.find_server("vps-1"), admin_password="x", image=None)
    assert started.admin_password == "typed-in" and asked == [("vps-1", "rescued")]
    assert not [call for call in ovh.calls if "/me/" in call]


def test_a_password_the_user_does_not_give_sets_the_vps_back() -> None:
    ovh, clock = FakeOvh(), FakeClock()

    def nothing(service: str) -> str:
        raise InvalidInputError("--rescue-password-stdin: no rescue password on stdin")

    cloud = OvhVpsCloud(ovh, "ovh-vps:test", clock=clock, sleep=clock.sleep,
                        rescue_password=nothing)  # fmt: skip
    with pytest.raises(InvalidInputError, match="no rescue password"):
        cloud.rescue(cloud.find_server("vps-1"), admin_password="x", image=None)
    assert (ovh.vps["netbootMode"], ovh.vps["state"]) == ("local", "running")
    assert ovh.calls.count("POST /vps/vps-1/reboot") == 2


class Answers(FakeOvh):
    """A python-ovh client whose answers to some paths are given (hostile or broken)."""

    def __init__(self, **answers: Any) -> None:
        super().__init__()
        self.answers = answers

    def get(self, _target: str, _need_auth: bool = True, **kwargs: Any) -> Any:
        if _target in self.answers:
            return self.answers[_target]
        return super().get(_target, _need_auth, **kwargs)

    def post(self, _target: str, _need_auth: bool = True, **kwargs: Any) -> Any:
        self.calls.append(f"POST {_target} {kwargs}")
        if _target in self.answers:
            return self.answers[_target]
        return super().post(_target, _need_auth, **kwargs)


@pytest.mark.parametrize("name", ["", "vps-1?x=1", "a/b", "..", "vps 1", "vps-1#", "-vps", "é"])
def test_names_that_would_change_the_request_are_refused(name: str) -> None:
    ovh, clock = FakeOvh(), FakeClock()
    cloud = _cloud(ovh, clock)
    for call in (cloud.find_server, cloud.get_server, cloud.unrescue, cloud.console_url,
                 cloud.console_access):  # fmt: skip
        with pytest.raises(InvalidInputError, match="is not a VPS service name"):
            call(name)
    assert ovh.calls == []


def test_broken_answers_are_cloud_errors_not_tracebacks() -> None:
    clock = FakeClock()
    with pytest.raises(CloudError, match="answered no list"):
        _cloud(Answers(**{"/vps": {"oops": 1}}), clock).list_servers()
    with pytest.raises(InvalidInputError, match="name pattern"):
        _cloud(FakeOvh(), clock).list_servers(name_regex="(")
    listed = _cloud(Answers(**{"/vps": ["vps-1", "../me", 7]}), clock).list_servers()
    assert [server.name for server in listed] == ["vps-1"]  # names it could not ask are dropped
    with pytest.raises(CloudError, match="answered no list"):
        _cloud(Answers(**{"/me/notification/email/history": "x"}), clock).rescue(
            _cloud(FakeOvh(), clock).find_server("vps-1"), admin_password="x", image=None
        )
    no_task = Answers(**{"/vps/vps-1/reboot": {"id": "100; rm"}})
    with pytest.raises(CloudError, match="gave no task"):
        _cloud(no_task, clock).unrescue("vps-1")
    with pytest.raises(CloudError, match="answered no URL"):
        _cloud(Answers(**{"/vps/vps-1/getConsoleUrl": {"url": 1}}), clock).console_url("vps-1")


@pytest.mark.parametrize(
    "answer",
    [
        {"host": "h", "port": "5900", "password": "p"},
        {"host": "h", "port": 70000, "password": "p"},
        {"host": "h\x1b[2J", "port": 5900, "password": "p"},
        {"host": "h", "port": True, "password": "p"},
        {"host": "h", "port": 5900},
        "vnc://h:5900",
    ],
)
def test_vnc_console_answers_are_checked(answer: Any) -> None:
    cloud = _cloud(Answers(**{"/vps/vps-1/openConsoleAccess": answer}), FakeClock())
    with pytest.raises(CloudError, match="answered no host, port and password"):
        cloud.console_access("vps-1")


def test_vnc_console_over_websocket() -> None:
    ovh = Answers(**{"/vps/vps-1/openConsoleAccess": {"host": "2001:db8::5", "port": 5900,
                                                      "password": "vnc-pass"}})  # fmt: skip
    access = _cloud(ovh, FakeClock()).console_access("vps-1")
    assert (access.url, access.password) == ("wss://[2001:db8::5]:5900", "vnc-pass")
    assert "vnc-pass" not in repr(access)
    assert "POST /vps/vps-1/openConsoleAccess {'protocol': 'VNCOverWebSocket'}" in ovh.calls
    with pytest.raises(InvalidInputError, match="VNC protocol 'RDP'"):
        _cloud(ovh, FakeClock()).console_access("vps-1", "RDP")


def _response(status: int, body: dict[str, str]) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps(body).encode()
    return response


@pytest.mark.parametrize(
    ("error", "kind", "message"),
    [
        (ovh_errors.InvalidKey("Invalid ApplicationSecret 'None'"), InvalidInputError,
         "application secret or the consumer key is missing"),
        (ovh_errors.InvalidKey("Invalid application key", response=_response(
            403, {"errorCode": "INVALID_KEY"})), CloudError,
         "authentication failed: the application key is unknown"),
        (ovh_errors.InvalidCredential("x", response=_response(
            403, {"errorCode": "INVALID_CREDENTIAL"})), CloudError,
         "consumer key is unknown or not validated"),
        (ovh_errors.NotGrantedCall("x", response=_response(
            403, {"errorCode": "NOT_GRANTED_CALL"})), CloudError, "not allowed this call"),
        (ovh_errors.ResourceConflictError("A task is already running"), WrongStateError,
         "A task is already running"),
        (ovh_errors.APIError("Too many requests", response=_response(429, {})), CloudError,
         "HTTP 429: Too many requests"),
    ],
)  # fmt: skip
def test_python_ovhs_errors_as_cloudrescues(
    error: Exception, kind: type[Exception], message: str
) -> None:
    with pytest.raises(kind, match=message) as raised, api_errors("VPS vps-1"):
        raise error
    assert "None" not in str(raised.value)


def test_a_killed_vps_rescue_is_resumed_from_the_journal_alone(tmp_path: Path) -> None:
    """No mark on a VPS: the journal entry of a dead run says the rescue is its own, so
    ``resume`` sets the netboot back to local and reboots (an OpenStack instance in rescue
    without our mark is someone else's: left alone)."""
    ovh, clock = FakeOvh(), FakeClock()
    ovh.vps.update(netbootMode="rescue", state="rescued")  # where the killed run left it
    journal = Journal(tmp_path)
    run = journal.start(cloud="ovh-vps:test", server_id="vps-1", server_name="vps-1",
                        command="fix-ssh-keys")  # fmt: skip
    journal.update(run, "rescued")
    workflow = RescueWorkflow(_cloud(ovh, clock), journal, RecordingEvents(),
                              RescueSettings(), clock=clock, sleep=clock.sleep)  # fmt: skip
    [entry] = journal.entries()
    assert workflow.resume(entry) == "vps-1: unrescued, now ACTIVE"
    assert (ovh.vps["netbootMode"], ovh.vps["state"]) == ("local", "running")
    assert [e.state for e in journal.entries(include_restored=True)] == ["restored"]


def test_the_journal_names_the_account_and_reopens_it(tmp_path: Path) -> None:
    conf = tmp_path / "ovh.conf"
    conf.write_text("[default]\nendpoint = http://127.0.0.1:1/ovh/1.0\n\n"
                    "[http://127.0.0.1:1/ovh/1.0]\napplication_key = a\n"
                    "application_secret = s\nconsumer_key = c\n")  # fmt: skip
    settings = ovh_settings(config_file=conf)
    assert settings.cloud_name == f"ovh-vps:http://127.0.0.1:1/ovh/1.0 config={conf.resolve()}"
    assert settings.origin == "http://127.0.0.1:1"
    reopened = open_recorded_cloud(settings.cloud_name)
    assert isinstance(reopened, OvhVpsCloud) and reopened.cloud_name == settings.cloud_name
    with pytest.raises(InvalidInputError, match=r"the ovh\.conf this run was made with .* is gone"):
        open_recorded_cloud(f"ovh-vps:ovh-eu config={tmp_path / 'gone.conf'}")
    with pytest.raises(InvalidInputError, match="expected a name"):
        ovh_settings(config_file=conf, endpoint="http://x/ config=y")


def test_the_consumer_key_goes_into_the_ovh_conf_named(tmp_path: Path) -> None:
    """Only its line changes (comments, other sections kept); the file is 0600 even when it
    was world-readable; a file that is no ovh.conf is refused."""
    conf = tmp_path / "ovh.conf"
    conf.write_text("; mine\n[default]\nendpoint=ovh-eu\n\n[ovh-eu]\napplication_key=a\n"
                    "consumer_key=old\n\n[ovh-ca]\nconsumer_key=other\n")  # fmt: skip
    conf.chmod(0o644)
    write_consumer_key(conf, "ovh-eu", "NewKey123")
    assert conf.read_text() == ("; mine\n[default]\nendpoint=ovh-eu\n\n[ovh-eu]\n"
                                "application_key=a\nconsumer_key = NewKey123\n\n[ovh-ca]\n"
                                "consumer_key=other\n")  # fmt: skip
    assert conf.stat().st_mode & 0o777 == 0o600
    fresh = tmp_path / "new.conf"
    write_consumer_key(fresh, "ovh-eu", "K2345678")
    made = "[default]\nendpoint = ovh-eu\n\n[ovh-eu]\nconsumer_key = K2345678\n"
    assert fresh.read_text() == made
    assert with_consumer_key("[ovh-eu]\napplication_key = a\n\n", "ovh-eu", "K") == (
        "[ovh-eu]\napplication_key = a\nconsumer_key = K\n\n"
    )
    (tmp_path / "notes.txt").write_text("hello\n")
    with pytest.raises(InvalidInputError, match=r"not an ovh\.conf \(no"):
        write_consumer_key(tmp_path / "notes.txt", "ovh-eu", "K2345678")
    with pytest.raises(InvalidInputError, match="not a regular file"):
        write_consumer_key(tmp_path, "ovh-eu", "K2345678")
    with pytest.raises(InvalidInputError, match=r"not an ovh\.conf section name"):
        write_consumer_key(fresh, "x]\n[y", "K2345678")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["new.conf", "notes.txt", "ovh.conf"]


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["console", "url", "vps-1", "--show-password"], "--show-password is for --vnc"),
        (["console", "url", "vps-1", "--vnc", "--type", "serial"], "no --type or --vnc-html"),
        (["console", "url", "vps-1", "--vnc", "--vnc-html"], "no --type or --vnc-html"),
        (["console", "url", "vps-1", "--vnc"], "--vnc is for an OVHcloud VPS"),
        (["--rescue-password-stdin", "console", "url", "vps-1"], "is for --provider ovh-vps"),
        (["ovh", "login"], "say where the new consumer key goes"),
        (["ovh", "login", "--write", "/nonexistent/ovh.conf"], "no such directory"),
        (["ovh", "login", "--write", "/etc/hostname"], "not an ovh.conf"),
    ],
)
def test_vps_options_refused_before_any_cloud_is_asked(argv: list[str], error: str) -> None:
    status, out, err = run_main(*argv)
    assert (status, out) == (2, "")
    assert err.startswith("cloudrescue: error: ") and error in err and len(err.splitlines()) == 1


def test_the_rescue_password_read_on_stdin() -> None:
    env, _out, err = piped()
    env.stdin = io.StringIO("first-pass\n\n")
    read = rescue_password_reader(env)
    assert read("vps-1") == "first-pass"
    assert err.getvalue() == (
        "reading the root password of the rescue of vps-1 (from its rescue e-mail) on stdin\n"
    )
    with pytest.raises(InvalidInputError, match="no rescue password for vps-2 on stdin"):
        read("vps-2")


def test_on_a_terminal_the_rescue_password_is_asked_with_the_display_hidden() -> None:
    err = io.StringIO()
    env = Environment(stdin=io.StringIO("typed-pass\n"), stdout=io.StringIO(), stderr=err,
                      stdin_isatty=True, stderr_isatty=True, width=80)  # fmt: skip
    hidden: list[str] = []

    @contextmanager
    def pause() -> Iterator[None]:
        hidden.append(err.getvalue())
        yield
        hidden.append(err.getvalue())

    env.pause_display = pause
    assert rescue_password_reader(env)("vps-1") == "typed-pass"
    asked = "root password of the rescue of vps-1 (from its rescue e-mail): "
    assert hidden == ["", asked]  # the question came while the display was hidden
    assert "typed-pass" not in err.getvalue()
