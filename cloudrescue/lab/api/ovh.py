"""An OVHcloud-API-shaped endpoint (``/ovh/1.0``) over the lab's real instances: the VPS API
(netboot, reboot tasks, IPs, consoles) and the account's service e-mails.

Each lab instance is a VPS whose service name is the instance's name. ``PUT /vps/{sn}``
``netbootMode=rescue`` then ``POST /vps/{sn}/reboot`` rescues the instance through the
lab's state machine (``Machine.rescue``) with a root password the lab makes, and once the
rescue is up a service e-mail worded like OVHcloud's carries the address, user and password;
``netbootMode=local`` and a reboot unrescue it. Requests are checked as OVHcloud checks
them: ``X-Ovh-Application``, ``X-Ovh-Consumer``, ``X-Ovh-Timestamp`` (within
``TIMESTAMP_WINDOW`` seconds of ``/auth/time``) and ``X-Ovh-Signature`` = ``$1$`` + SHA1 of
``secret+consumerKey+METHOD+fullURL+body+timestamp``. Shapes are those of the published
schema (``vps.VPSWithIAM``, ``vps.Task``, ``vps.Vnc``, ``nichandle.EmailNotification``).
The netboot modes, tasks and e-mails live in the daemon's memory only.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import html
import itertools
import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse

from cloudrescue.lab.api import store as st
from cloudrescue.lab.api.actions import generate_password
from cloudrescue.lab.api.consoles import novnc_url
from cloudrescue.lab.api.error_bodies import OvhError
from cloudrescue.lab.api.service import LabService, lab_of
from cloudrescue.lab.api.store import ServerRecord
from cloudrescue.lab.model import RescueRequest
from cloudrescue.lab.ovhconf import OVH_PREFIX, OvhAccount

log = logging.getLogger(__name__)

TIMESTAMP_WINDOW = 120  # seconds a signed request's timestamp may differ from the lab's time
TASK_START_DELAY = 0.3  # seconds a task stays ``todo`` before it runs
FIRST_EMAIL_ID = 7_000_001
ALL_METHODS = ("GET", "POST", "PUT", "DELETE")
NETBOOT_MODES = ("local", "rescue")
MAX_RULES = 100  # access rules a consumer key may ask for


def rescue_email(
    service: str, address: str, password: str, *, link: str | None = None
) -> tuple[str, str]:
    """Subject and body of the rescue e-mail, as OVHcloud words it (in French): the password
    in the body, or (``link``) the one-time secret page that shows it."""
    subject = f"Redémarrage en mode rescue de votre VPS {service}"
    secret = (
        f"Mot de passe : {password}\n\n"
        if link is None
        else "Pour des raisons de sécurité, votre mot de passe n'est pas envoyé par e-mail. "
        "Il est consultable une seule fois à l'adresse suivante :\n"
        f"{link}\n\n"
    )
    body = (
        "Bonjour,\n\n"
        f"Votre VPS {service} vient d'être redémarré en mode rescue.\n\n"
        "Vous pouvez dès à présent vous y connecter en SSH avec les identifiants "
        "suivants :\n\n"
        f"Adresse IP du VPS : {address}\n"
        "Nom d'utilisateur : root\n"
        f"{secret}"
        "Une fois vos opérations terminées, redémarrez votre VPS en mode normal depuis "
        "votre espace client OVHcloud.\n\n"
        "Cordialement,\nLe support OVHcloud\n"
    )
    return subject, body


def _now() -> str:
    return datetime.now(UTC).astimezone().isoformat(timespec="seconds")


@dataclass
class ConsumerKey:
    """A consumer key, its state and its access rules (``{"method", "path"}``)."""

    rules: list[dict[str, str]]
    validated: bool = False

    def grants(self, method: str, path: str) -> bool:
        return any(
            rule.get("method") == method and fnmatch.fnmatchcase(path, rule.get("path", ""))
            for rule in self.rules
        )


@dataclass
class Task:
    """A ``vps.Task``."""

    id: int
    type: str
    state: str = "todo"
    progress: int = 0
    date: str = field(default_factory=_now)

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "state": self.state,
            "progress": self.progress,
            "date": self.date,
        }


class OvhState:
    """The account (keys, consumer keys), each VPS's netboot mode and tasks, the e-mails."""

    def __init__(self, account: OvhAccount) -> None:
        self.account = account
        self.consumers: dict[str, ConsumerKey] = {
            account.consumer_key: ConsumerKey(
                [{"method": method, "path": "/*"} for method in ALL_METHODS], validated=True
            )
        }
        self.pending: dict[str, str] = {}  # credentialToken -> consumer key to validate
        self.secrets: dict[str, str] = {}  # secret page token -> the password it shows once
        self.netboot: dict[str, str] = {}  # server id -> netboot mode (absent: local)
        self.tasks: dict[str, dict[int, Task]] = {}  # server id -> its tasks
        self.emails: list[dict[str, Any]] = [
            {
                "id": FIRST_EMAIL_ID,
                "date": _now(),
                "subject": "Votre facture OVHcloud est disponible",
                "body": "Bonjour,\n\nVotre facture du mois est disponible dans votre espace "
                "client.\n\nCordialement,\nOVHcloud\n",
            }
        ]
        self._ids = itertools.count(1)
        self._email_ids = itertools.count(FIRST_EMAIL_ID + 1)
        self.lock = threading.Lock()

    def start_task(self, server_id: str, kind: str) -> Task:
        """A new task of ``server_id``; 409 while another one runs (checked and made under
        one lock: two reboots at once cannot both start)."""
        with self.lock:
            tasks = self.tasks.setdefault(server_id, {})
            if any(t.state in ("todo", "doing") for t in tasks.values()):
                raise OvhError(409, "A task is already running on this VPS")
            made = Task(next(self._ids), kind)
            tasks[made.id] = made
            return made

    def running(self, server_id: str) -> bool:
        with self.lock:
            return any(t.state in ("todo", "doing") for t in self.tasks.get(server_id, {}).values())

    def mail(self, subject: str, body: str) -> None:
        with self.lock:
            self.emails.append(
                {"id": next(self._email_ids), "date": _now(), "subject": subject, "body": body}
            )


def ovh_of(request: Request) -> OvhState:
    return lab_of(request).ovh


def _signed_url(request: Request) -> str:
    raw_path = request.scope.get("raw_path") or request.url.path.encode()
    query = request.scope.get("query_string") or b""
    url = f"{request.url.scheme}://{request.headers.get('host', '')}{raw_path.decode('latin-1')}"
    return f"{url}?{query.decode('latin-1')}" if query else url


def _application(request: Request) -> OvhState:
    """The lab's OVH state, once the request's ``X-Ovh-Application`` is the account's."""
    ovh = ovh_of(request)
    given = request.headers.get("X-Ovh-Application", "")
    if not hmac.compare_digest(given.encode(), ovh.account.application_key.encode()):
        raise OvhError(403, "Invalid application key", code="INVALID_KEY")
    return ovh


async def signed(request: Request) -> None:
    """Check the application key, consumer key, timestamp and signature, and the consumer
    key's access rules, as OVHcloud does (its error codes and HTTP statuses)."""
    ovh = _application(request)
    consumer = request.headers.get("X-Ovh-Consumer", "")
    key = ovh.consumers.get(consumer)
    if key is None or not key.validated:
        raise OvhError(403, "This credential does not exist", code="INVALID_CREDENTIAL")
    stamp = request.headers.get("X-Ovh-Timestamp", "")
    if not stamp.isdigit() or abs(int(stamp) - int(time.time())) > TIMESTAMP_WINDOW:
        raise OvhError(400, "Query out of time", code="QUERY_TIME_OUT")
    body = (await request.body()).decode("utf-8", errors="replace")
    parts = [ovh.account.application_secret, consumer, request.method.upper()]
    signed_text = "+".join([*parts, _signed_url(request), body, stamp])
    expected = "$1$" + hashlib.sha1(signed_text.encode(), usedforsecurity=False).hexdigest()
    if not hmac.compare_digest(request.headers.get("X-Ovh-Signature", ""), expected):
        raise OvhError(400, "Invalid signature", code="INVALID_SIGNATURE")
    path = request.url.path.removeprefix(OVH_PREFIX)
    if not key.grants(request.method.upper(), path):
        raise OvhError(403, "This call has not been granted", code="NOT_GRANTED_CALL")


router = APIRouter(prefix=OVH_PREFIX)
vps_router = APIRouter(prefix=OVH_PREFIX, dependencies=[Depends(signed)])
validation_router = APIRouter(prefix="/ovh")
Lab = Annotated[LabService, Depends(lab_of)]


@router.get("/auth/time")
async def auth_time() -> int:
    return int(time.time())


@router.post("/auth/credential")
async def auth_credential(
    request: Request, body: Annotated[dict[str, Any], Body()]
) -> dict[str, Any]:
    """A consumer key with the rules asked for, valid once its validation URL is opened."""
    ovh = _application(request)
    rules = body.get("accessRules")
    if (
        not isinstance(rules, list)
        or not 0 < len(rules) <= MAX_RULES
        or not all(
            isinstance(rule, dict)
            and rule.get("method") in ALL_METHODS
            and isinstance(rule.get("path"), str)
            and rule["path"].startswith("/")
            for rule in rules
        )
    ):
        raise OvhError(400, "Invalid accessRules")
    consumer, token = secrets.token_hex(16), secrets.token_urlsafe(24)
    with ovh.lock:
        ovh.consumers[consumer] = ConsumerKey(
            [{"method": rule["method"], "path": rule["path"]} for rule in rules]
        )
        ovh.pending[token] = consumer
    base = str(request.base_url).rstrip("/")
    return {
        "consumerKey": consumer,
        "state": "pendingValidation",
        "validationUrl": f"{base}/ovh/auth/?credentialToken={token}",
    }


@validation_router.get("/auth/", response_class=HTMLResponse)
async def validate(request: Request, credentialToken: str = "") -> HTMLResponse:  # noqa: N803
    """The lab's stand-in for OVHcloud's login page: opening it validates the key."""
    ovh = ovh_of(request)
    with ovh.lock:
        consumer = ovh.pending.pop(credentialToken, None)
        if consumer is not None:
            ovh.consumers[consumer].validated = True
    if consumer is None:
        return HTMLResponse("<p>Unknown or used credential token.</p>", status_code=404)
    return HTMLResponse("<p>The consumer key is validated.</p>")


@validation_router.get("/secret-service/", response_class=HTMLResponse)
async def secret_page(request: Request, token: str = "") -> HTMLResponse:
    """The one-time secret page a rescue e-mail links to: the password, once; then 404."""
    ovh = ovh_of(request)
    with ovh.lock:
        password = ovh.secrets.pop(token, None)
    if password is None:
        return HTMLResponse("<p>Ce secret n'existe pas ou a déjà été consulté.</p>", 404)
    return HTMLResponse(
        "<html><body><h1>Votre secret</h1>\n"
        f"<p>Mot de passe : <code>{html.escape(password)}</code></p>\n"
        "<p>Ce secret ne sera plus consultable.</p></body></html>\n"
    )


def _record(lab: LabService, service: str) -> ServerRecord:
    for record in lab.store.all():
        if record.spec.name == service:
            return record
    raise OvhError(404, f"The requested object (serviceName = {service}) does not exist")


def _state(lab: LabService, record: ServerRecord) -> str:
    """The ``vps.VpsStateEnum`` value the instance's record shows."""
    if lab.ovh.running(record.id) or record.task_state not in (None, st.SPAWNING):
        return "rebooting"
    return {
        st.RESCUED: "rescued",
        st.ACTIVE: "running",
        st.STOPPED: "stopped",
        st.BUILDING: "installing",
    }.get(record.vm_state, "stopped")


def vps_view(lab: LabService, record: ServerRecord) -> dict[str, Any]:
    """A ``vps.VPSWithIAM``."""
    service = record.spec.name
    return {
        "name": service,
        "displayName": service,
        "state": _state(lab, record),
        "netbootMode": lab.ovh.netboot.get(record.id, "local"),
        "cluster": f"lab-{lab.config.lab_id}",
        "zone": "Region OpenStack: lab",
        "zoneType": "local",
        "offerType": "ssd",
        "vcore": 1,
        "memoryLimit": 2048,
        "keymap": None,
        "slaMonitoring": False,
        "monitoringIpBlocks": [],
        "model": {
            "name": "vps-lab-1",
            "offer": "VPS lab",
            "vcore": 1,
            "memory": 2048,
            "disk": 4,
            "version": "2019v1",
            "datacenter": ["lab"],
            "availableOptions": [],
            "maximumAdditionnalIp": 0,
        },
        "iam": {"id": record.id, "urn": f"urn:v1:eu:resource:vps:{service}"},
    }


@vps_router.get("/vps")
async def list_vps(lab: Lab) -> list[str]:
    return [record.spec.name for record in lab.store.all()]


@vps_router.get("/vps/{service}")
async def get_vps(service: str, lab: Lab) -> dict[str, Any]:
    return vps_view(lab, _record(lab, service))


@vps_router.put("/vps/{service}")
async def put_vps(service: str, lab: Lab, body: Annotated[dict[str, Any], Body()]) -> None:
    """Only ``netbootMode`` changes here (the other fields are read-only or ignored)."""
    record = _record(lab, service)
    mode = body.get("netbootMode")
    if mode is not None:
        if mode not in NETBOOT_MODES:
            raise OvhError(400, f"Invalid value for netbootMode: {mode!r}")
        with lab.ovh.lock:
            lab.ovh.netboot[record.id] = str(mode)
        log.info("%s: netboot mode %s", service, mode)


@vps_router.get("/vps/{service}/ips")
async def vps_ips(service: str, lab: Lab) -> list[str]:
    return [_record(lab, service).spec.address]


@vps_router.get("/vps/{service}/tasks")
async def vps_tasks(
    service: str, lab: Lab, state: str | None = None, type: str | None = None
) -> list[int]:
    record = _record(lab, service)
    with lab.ovh.lock:
        tasks = list(lab.ovh.tasks.get(record.id, {}).values())
    return [t.id for t in tasks if (state in (None, t.state)) and (type in (None, t.type))]


@vps_router.get("/vps/{service}/tasks/{task_id}")
async def vps_task(service: str, task_id: int, lab: Lab) -> dict[str, Any]:
    record = _record(lab, service)
    with lab.ovh.lock:
        task = lab.ovh.tasks.get(record.id, {}).get(task_id)
        if task is None:
            raise OvhError(404, f"The requested object (id = {task_id}) does not exist")
        return task.view()


@vps_router.post("/vps/{service}/reboot")
async def vps_reboot(service: str, lab: Lab) -> dict[str, Any]:
    """A ``rebootVm`` task: into rescue when the netboot mode says so, else out of it (or a
    plain reboot). The ``ovh_reboot_fails`` fault ends it in ``error``, nothing done."""
    record = _record(lab, service)
    task = lab.ovh.start_task(record.id, "rebootVm")
    fails = lab.faults.ovh_reboot_fails(record.id, service)
    threading.Thread(
        target=_run_reboot, args=(lab, record.id, task, fails), name=f"ovh-{service}", daemon=True
    ).start()
    with lab.ovh.lock:
        return task.view()


def _set(lab: LabService, task: Task, state: str, progress: int) -> None:
    with lab.ovh.lock:
        task.state, task.progress = state, progress


def _run_reboot(lab: LabService, server_id: str, task: Task, fails: bool) -> None:
    time.sleep(TASK_START_DELAY)
    _set(lab, task, "doing", 10)
    record = lab.store.get(server_id)
    if record is None or fails:
        time.sleep(max(0.0, lab.transition_delay()))
        log.info("%s: reboot task %d ends in error", server_id, task.id)
        _set(lab, task, "error", 0)
        return
    try:
        _reboot(lab, record)
    except Exception:
        log.exception("%s: reboot task %d failed", record.spec.name, task.id)
        _set(lab, task, "error", 0)
        return
    _set(lab, task, "done", 100)


def _reboot(lab: LabService, record: ServerRecord) -> None:
    """What a reboot does to the instance, by its netboot mode and its state."""
    machine, name = lab.machine, record.spec.name
    rescue = lab.ovh.netboot.get(record.id, "local") == "rescue"
    if record.vm_state == st.RESCUED:
        machine.unrescue(record.id).result()
    elif not rescue:
        machine.reboot(record.id, hard=True).result()
    if not rescue:
        return
    password = generate_password()
    request = RescueRequest(
        admin_password=password,
        image_id=record.image_id,
        silent_host_keys=True,  # what a VPS rescue's console shows nobody through the API
        ssh_cut=lab.faults.ssh_cut(record.id, name),
    )
    machine.rescue(record.id, request).result()
    lab.admin_passes[record.id] = password
    form = lab.faults.ovh_rescue_email(record.id, name)
    if form == "none":
        log.info("%s: rescued, no rescue e-mail (ovh_no_rescue_email)", name)
        return
    link = None
    if form == "link":
        token = secrets.token_urlsafe(24)
        with lab.ovh.lock:
            lab.ovh.secrets[token] = password
        link = f"http://127.0.0.1:{lab.config.api_port}/ovh/secret-service/?token={token}"
    lab.ovh.mail(*rescue_email(name, record.spec.address, password, link=link))
    log.info("%s: rescue e-mail sent (%s)", name, form)


@vps_router.post("/vps/{service}/getConsoleUrl")
async def vps_console_url(service: str, request: Request, lab: Lab) -> str:
    record = _record(lab, service)
    return novnc_url(str(request.base_url), lab.consoles.issue(record.id))


@vps_router.post("/vps/{service}/openConsoleAccess")
async def vps_console_access(
    service: str, lab: Lab, body: Annotated[dict[str, Any] | None, Body()] = None
) -> dict[str, Any]:
    """A ``vps.Vnc`` (the lab has no VNC server: nothing answers at that port's VNC)."""
    _record(lab, service)
    protocol = (body or {}).get("protocol", "VNC")
    if protocol not in ("VNC", "VNCOverWebSocket"):
        raise OvhError(400, f"Invalid value for protocol: {protocol!r}")
    return {"host": "127.0.0.1", "port": lab.config.api_port, "password": generate_password()}


@vps_router.get("/me/notification/email/history")
async def email_history(request: Request) -> list[int]:
    ovh = ovh_of(request)
    with ovh.lock:
        return [int(mail["id"]) for mail in ovh.emails]


@vps_router.get("/me/notification/email/history/{mail_id}")
async def email(mail_id: int, request: Request) -> JSONResponse:
    ovh = ovh_of(request)
    with ovh.lock:
        found = next((dict(mail) for mail in ovh.emails if mail["id"] == mail_id), None)
    if found is None:
        raise OvhError(404, f"The requested object (id = {mail_id}) does not exist")
    return JSONResponse(found)


@vps_router.api_route("/{path:path}", methods=list(ALL_METHODS))
async def unknown_path(path: str) -> None:
    """Any other path, signed and granted like the others first (as OVHcloud checks the
    consumer key's rules before the path): OVHcloud's 404."""
    raise OvhError(404, "Got an invalid (or empty) URL")
