"""The ``ovh-vps`` backend on a fake python-ovh client (injected, no network): the status it
shows, the rescue e-mail it reads (OVHcloud's wording, a new one only, this VPS's only), the
reboot task it follows; and the rescue workflow on a cloud without a console log."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cloudrescue.cloud.ovh_mail import plain_text, rescue_credentials
from cloudrescue.cloud.ovh_vps import OvhVpsCloud, vps_status
from cloudrescue.errors import CloudError, CloudTimeoutError, HostKeyError, InvalidInputError
from tests.fakes import FakeClock
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
