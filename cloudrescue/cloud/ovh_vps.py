"""``CloudBackend`` for OVHcloud VPS on python-ovh (``--provider ovh-vps``).

A VPS is rescued by its netboot mode: ``PUT /vps/{sn}`` ``netbootMode=rescue``, then
``POST /vps/{sn}/reboot`` and its task followed to ``done``; OVHcloud then mails the rescue's
SSH credentials (also kept in the account's service e-mails, ``/me/notification/email``), or
a link to a one-time secret page that shows the password. The password cloudrescue asked for
is not used: the one that counts is the e-mail's (or the one the user gives:
``rescue_password``). Leaving is ``netbootMode=local`` and another reboot.

Everything the API answers is checked before use (a service name before it goes into a path,
the shape of every answer), and its errors become the error tree's (``api_errors``: a refused
key or signature is an authentication ``CloudError``, exit 5). The journal's name of the
account (``OvhSettings.cloud_name``: ``ovh-vps:<endpoint>`` and the ovh.conf named) is what
``resume`` reopens (``open_recorded_vps``).

Instances are VPS service names (``vps-1a2b3c4d.vps.ovh.net``): ``ServerInfo.id`` and
``name`` are both the service name. The VPS API has no console log (so the rescue's host key
cannot be checked against one: ``announces_host_keys`` is False, and the rescue workflow
requires ``--trust-host-key``), no metadata (the journal alone records a rescue), no tags
and no rescue image choice.

Configuration is python-ovh's: ``OVH_ENDPOINT``, ``OVH_APPLICATION_KEY``,
``OVH_APPLICATION_SECRET``, ``OVH_CONSUMER_KEY`` (or ``OVH_CLIENT_ID`` / ``OVH_CLIENT_SECRET``),
then ``./ovh.conf``, ``~/.ovh.conf``, ``/etc/ovh.conf``, plus the file named by
``CLOUDRESCUE_OVH_CONFIG`` (what ``cloudrescue lab up`` writes). python-ovh knows only its
fixed endpoint names (``ovh-eu``, ``ovh-ca``, ``ovh-us``...); an endpoint that is an
``http(s)://`` URL (the lab's) is added to its ``ovh.client.ENDPOINTS`` under that same name
before the client is made, which is also how a python-ovh script of one's own reaches it.

Fair use: OVHcloud allows about one request a second per consumer key. Every request goes
through ``cloud/retry.py``'s transport (one request a second at most unless the configuration
says otherwise, 429 and 503 sent again after the ``Retry-After`` the API gives), and tasks and
e-mails are polled every ``poll_interval`` seconds.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from cloudrescue.cloud.base import Address, ImageInfo, RescueStarted, ServerInfo
from cloudrescue.cloud.ovh_mail import RescueCredentials, page_password, rescue_credentials
from cloudrescue.errors import (
    CloudError,
    CloudRescueError,
    CloudTimeoutError,
    InvalidInputError,
    NotFoundError,
    WrongStateError,
)

PROVIDER = "ovh-vps"
CONFIG_VARIABLE = "CLOUDRESCUE_OVH_CONFIG"
FAIR_USE_RATE = 1.0  # requests a second: what OVHcloud allows per consumer key
POLL_INTERVAL = 2.0  # seconds between two reads of a task or of the e-mail history
TASK_TIMEOUT = 600.0
MAIL_TIMEOUT = 300.0  # seconds (``rescue_email_timeout`` in the endpoint's configuration)
MAX_MAIL_TIMEOUT = 3600.0
NETBOOT_READS = 10  # reads of the netboot mode after a PUT, POLL_INTERVAL apart
TASK_DONE = "done"
TASK_FAILED = frozenset({"error", "cancelled", "blocked"})
BUSY_STATES = frozenset({"rebooting", "stopping"})
# A service name as OVHcloud makes them (``vps-1a2b3c4d.vps.ovh.net``, older ``vps123456.ovh.net``)
SERVICE_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,253}[A-Za-z0-9])?")
VNC_PROTOCOLS = ("VNCOverWebSocket", "VNC")
ENDPOINT = re.compile(r"[a-z0-9-]+|https?://[^\s\[\]]+", re.IGNORECASE)
HOST = re.compile(r"[A-Za-z0-9][A-Za-z0-9.:-]{0,252}")  # a host name or an IP address
# Where a rescue e-mail's secret link may lead (https only), besides the API's own origin.
SECRET_DOMAINS = ("ovh.com", "ovh.net", "ovhcloud.com", "ovh.ca")
SECRET_PAGE_BYTES = 1 << 20
CONFIG_MARK = " config="  # in the journal's cloud name: "ovh-vps:<endpoint> config=<ovh.conf>"
NO_CONFIG_HINT = (
    "set OVH_ENDPOINT, OVH_APPLICATION_KEY, OVH_APPLICATION_SECRET and OVH_CONSUMER_KEY, or "
    f"write an ovh.conf (python-ovh's format; {CONFIG_VARIABLE} names one)"
)
LOGIN_HINT = "`cloudrescue ovh login --write FILE` makes a consumer key with those rules"
VALIDATE_HINT = (
    "a new consumer key works once its validation URL is opened and accepted; "
    "`cloudrescue ovh login --write FILE` makes one"
)
# The answers of the OVH API that say the credentials are wrong (its ``errorCode``).
AUTH_ERRORS = {
    "INVALID_SIGNATURE": "the request signature was refused (check the application secret)",
    "INVALID_KEY": "the application key is unknown",
    "INVALID_CREDENTIAL": "the consumer key is unknown or not validated",
    "NOT_CREDENTIAL": "the consumer key is unknown or not validated",
    "QUERY_TIME_OUT": "the request timestamp was refused (is this machine's clock right?)",
}


class OvhApi(Protocol):
    """What the backend uses of ``ovh.Client`` (tests give a fake)."""

    def get(self, _target: str, _need_auth: bool = True, **kwargs: Any) -> Any: ...
    def put(self, _target: str, _need_auth: bool = True, **kwargs: Any) -> Any: ...
    def post(self, _target: str, _need_auth: bool = True, **kwargs: Any) -> Any: ...


def vps_status(
    netboot_mode: str | None, state: str | None, *, rescue_pending: bool = False
) -> tuple[str, str | None]:
    """The ``status`` and ``task_state`` cloudrescue shows for a VPS (nova's words).

    ``rescue_pending``: this process is rescuing it (netboot set, reboot or e-mail still to
    come): ``ACTIVE``/``rescuing``, as nova shows a rescue in progress. A reboot running is
    ``REBOOT`` with ``rescuing`` (into rescue) or ``rebooting``. Rebooted into rescue
    (``state`` ``rescued``), or with the netboot on rescue (its next boot is the rescue's), is
    ``RESCUE``; otherwise ``running`` is ``ACTIVE``, ``stopped`` ``SHUTOFF``, anything else
    its state in capitals (``MAINTENANCE``...).
    """
    current = state or "unknown"
    if rescue_pending:
        return "ACTIVE", "rescuing"
    if current in BUSY_STATES:
        return "REBOOT", "rescuing" if netboot_mode == "rescue" else "rebooting"
    if current == "rescued" or netboot_mode == "rescue":
        return "RESCUE", None
    return {"running": "ACTIVE", "stopped": "SHUTOFF"}.get(current, current.upper()), None


def _error_code(error: Exception) -> str | None:
    response = getattr(error, "response", None)
    try:
        body = response.json() if response is not None else None
    except ValueError:
        return None
    code = body.get("errorCode") if isinstance(body, dict) else None
    return str(code) if code else None


def _message(error: Exception) -> str:
    text = str(error.args[0]) if error.args and error.args[0] else type(error).__name__
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__


@contextmanager
def api_errors(what: str) -> Iterator[None]:
    """python-ovh's exceptions as cloudrescue's one-line errors (never a credential)."""
    from ovh import exceptions as ovh_errors

    from cloudrescue.cloud.retry import gave_up

    try:
        yield
    except ovh_errors.ResourceNotFoundError as error:
        raise NotFoundError(f"{what}: {_message(error)}") from error
    except ovh_errors.ResourceConflictError as error:
        raise WrongStateError(f"{what}: {_message(error)}") from error
    except ovh_errors.HTTPError as error:
        raise CloudError(f"{what}: cannot reach the OVH API ({type(error).__name__})") from error
    except (ovh_errors.InvalidConfiguration, ovh_errors.InvalidRegion) as error:
        raise InvalidInputError(
            f"OVH API configuration: {_message(error)}", hint=NO_CONFIG_HINT
        ) from error
    except ovh_errors.InvalidKey as error:
        if getattr(error, "response", None) is not None:  # the API answered INVALID_KEY
            refused = AUTH_ERRORS["INVALID_KEY"]
            raise CloudError(f"{what}: authentication failed: {refused}") from error
        # raised before sending: a key or the secret is missing (its message shows the value)
        raise InvalidInputError(
            "OVH API configuration: the application secret or the consumer key is missing",
            hint=NO_CONFIG_HINT,
        ) from error
    except ovh_errors.APIError as error:
        code = _error_code(error)
        if code in AUTH_ERRORS:
            raise CloudError(
                f"{what}: authentication failed: {AUTH_ERRORS[code]}",
                hint=VALIDATE_HINT if code in ("INVALID_CREDENTIAL", "NOT_CREDENTIAL") else None,
            ) from error
        if code == "NOT_GRANTED_CALL":
            raise CloudError(
                f"{what}: the consumer key is not allowed this call ({_message(error)})",
                hint=f"its access rules need GET/PUT/POST on /vps/* and GET on "
                f"/me/notification/email/history/*: {LOGIN_HINT}",
            ) from error
        response = getattr(error, "response", None)
        status = getattr(response, "status_code", None)
        stopped = gave_up(response)
        retried = f" ({stopped.describe()})" if stopped else ""
        answered = f"HTTP {status}: " if status is not None else ""
        raise CloudError(f"{what}: {answered}{_message(error)}{retried}") from error


@dataclass(frozen=True)
class VncAccess:
    """``POST /vps/{sn}/openConsoleAccess``'s answer (``vps.Vnc``): where the VPS's VNC
    console answers, and its one-time password (never shown unless asked for)."""

    protocol: str
    host: str
    port: int
    password: str = field(repr=False)

    @property
    def url(self) -> str:
        """``wss://host:port`` for ``VNCOverWebSocket`` (what noVNC connects to), else
        ``vnc://host:port``."""
        scheme = "wss" if self.protocol == "VNCOverWebSocket" else "vnc"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"


def service_path(service: str, *rest: str) -> str:
    """``/vps/{service}/...``, ``service`` checked first: a name that could change the
    request (``/``, ``?``, ``..``, spaces) is refused, never sent."""
    if not SERVICE_NAME.fullmatch(service) or ".." in service:
        raise InvalidInputError(f"{service!r} is not a VPS service name")
    return "/".join(("/vps", service, *rest))


def _fetch_page(url: str) -> str:
    """The secret page at ``url`` (no redirect followed, at most ``SECRET_PAGE_BYTES``)."""
    import requests

    try:
        with requests.get(url, timeout=30, allow_redirects=False, stream=True) as answer:
            if answer.status_code != 200:
                raise CloudError(
                    f"the rescue e-mail's secret page answered HTTP {answer.status_code}",
                    hint="it shows its secret once: if it was opened already, read the "
                    "password from the e-mail's page yourself and use --rescue-password-stdin",
                )
            body = answer.raw.read(SECRET_PAGE_BYTES + 1, decode_content=True)
    except requests.RequestException as error:
        raise CloudError(
            f"cannot open the rescue e-mail's secret page ({type(error).__name__})"
        ) from error
    if len(body) > SECRET_PAGE_BYTES:
        raise CloudError("the rescue e-mail's secret page is too large to be one")
    return bytes(body).decode("utf-8", errors="replace")


class OvhVpsCloud:
    """A ``CloudBackend`` on the OVHcloud VPS API through ``client`` (an ``ovh.Client``).

    ``clock`` and ``sleep`` are the time the task and e-mail waits use; ``fetch`` opens a
    rescue e-mail's secret link (tests give fakes). ``rescue_password``, when given, is asked
    for the rescue's password once the VPS has rebooted into rescue (``--rescue-password-stdin``)
    instead of reading the service e-mails. A secret link is followed only to the API's own
    origin (``origin``: the lab's) or to an https page of OVHcloud's domains.
    """

    announces_host_keys = False  # the VPS API has no console log to read host keys from
    keeps_marks = False  # a VPS has no metadata: the journal alone says whose rescue it is

    def __init__(
        self,
        client: OvhApi,
        name: str,
        *,
        poll_interval: float = POLL_INTERVAL,
        task_timeout: float = TASK_TIMEOUT,
        mail_timeout: float = MAIL_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        fetch: Callable[[str], str] = _fetch_page,
        origin: str | None = None,
        rescue_password: Callable[[str], str] | None = None,
    ) -> None:
        self._client = client
        self._name = name
        self._poll = poll_interval
        self._task_timeout = task_timeout
        self._mail_timeout = mail_timeout
        self._clock = clock
        self._sleep = sleep
        self._fetch = fetch
        self._origin = origin
        self._rescue_password = rescue_password
        self._addresses: dict[str, tuple[Address, ...]] = {}
        self._rescuing: set[str] = set()

    @property
    def cloud_name(self) -> str:
        return self._name

    # -- reading ----------------------------------------------------------------------------

    def _vps(self, service: str) -> dict[str, Any]:
        path = service_path(service)
        with api_errors(f"VPS {service}"):
            found = self._client.get(path)
        if not isinstance(found, dict):
            raise CloudError(f"VPS {service}: the OVH API answered something else than a VPS")
        return found

    def _ips(self, service: str) -> tuple[Address, ...]:
        if service not in self._addresses:
            with api_errors(f"addresses of VPS {service}"):
                ips = self._client.get(service_path(service, "ips"))
            if not isinstance(ips, list):
                raise CloudError(f"addresses of VPS {service}: the OVH API answered no list")
            self._addresses[service] = tuple(
                Address(ip=str(ip), version=6 if ":" in str(ip) else 4, kind="fixed",
                        network="public")
                for ip in ips
            )  # fmt: skip
        return self._addresses[service]

    def _info(self, service: str, vps: dict[str, Any]) -> ServerInfo:
        status, task_state = vps_status(
            _text(vps.get("netbootMode")),
            _text(vps.get("state")),
            rescue_pending=service in self._rescuing,
        )
        return ServerInfo(
            id=service,
            name=service,
            status=status,
            task_state=task_state,
            addresses=self._ips(service),
            tags=None,
        )

    def find_server(self, name_or_id: str) -> ServerInfo:
        service_path(name_or_id)
        try:
            return self.get_server(name_or_id)
        except NotFoundError:
            raise NotFoundError(f"no VPS named {name_or_id!r} in this OVHcloud account") from None

    def get_server(self, server_id: str) -> ServerInfo:
        # The name asked for, not the one answered: the answer cannot redirect later calls.
        return self._info(server_id, self._vps(server_id))

    def list_servers(
        self,
        *,
        name_regex: str | None = None,
        tags: tuple[str, ...] = (),
        any_tags: tuple[str, ...] = (),
        not_any_tags: tuple[str, ...] = (),
        statuses: tuple[str, ...] = (),
    ) -> list[ServerInfo]:
        if tags or any_tags:
            return []  # a VPS has no tags: none has the ones asked for
        try:
            pattern = re.compile(name_regex, re.IGNORECASE) if name_regex else None
        except re.error as error:
            raise InvalidInputError(f"name pattern {name_regex!r}: {error}") from None
        with api_errors("listing VPS"):
            answered = self._client.get("/vps")
        if not isinstance(answered, list):
            raise CloudError("listing VPS: the OVH API answered no list")
        names = [n for n in answered if isinstance(n, str) and SERVICE_NAME.fullmatch(n)]
        found = [self.get_server(name) for name in names if pattern is None or pattern.search(name)]
        wanted = {status.upper() for status in statuses}
        return [server for server in found if not wanted or server.status in wanted]

    def find_image(self, name_or_id: str) -> ImageInfo:
        raise InvalidInputError(
            f"--image {name_or_id}: a VPS rescue boots OVHcloud's own rescue system, there is "
            "no image to choose"
        )

    # -- rescue -----------------------------------------------------------------------------

    def _set_netboot(self, service: str, mode: str) -> None:
        """Set the netboot mode and read it back until the API shows it."""
        with api_errors(f"netboot mode of VPS {service}"):
            self._client.put(service_path(service), netbootMode=mode)
        for _ in range(NETBOOT_READS):
            if self._vps(service).get("netbootMode") == mode:
                return
            self._sleep(self._poll)
        raise CloudError(f"VPS {service}: its netboot mode does not read back as {mode!r}")

    def _reboot(self, service: str) -> None:
        """Reboot and follow the task until ``done``; a failed task is a ``CloudError``."""
        with api_errors(f"reboot of VPS {service}"):
            task = self._client.post(service_path(service, "reboot"))
        task_id = task.get("id") if isinstance(task, dict) else None
        if not isinstance(task_id, int) or isinstance(task_id, bool):
            raise CloudError(f"reboot of VPS {service}: the OVH API gave no task")
        deadline = self._clock() + self._task_timeout
        state = _text(task.get("state")) or "todo"
        while state != TASK_DONE:
            if state in TASK_FAILED:
                raise CloudError(
                    f"the reboot of VPS {service} failed: its task {task_id} is {state}"
                )
            if self._clock() > deadline:
                raise CloudTimeoutError(
                    f"the reboot of VPS {service} was not done within {self._task_timeout:.0f} s "
                    f"(task {task_id} is {state})"
                )
            self._sleep(self._poll)
            try:
                with api_errors(f"reboot task of VPS {service}"):
                    task = self._client.get(service_path(service, "tasks", str(task_id)))
            except NotFoundError:
                return  # finished tasks are removed from the list after a while
            state = (_text(task.get("state")) if isinstance(task, dict) else None) or ""

    def _email_ids(self) -> set[int]:
        with api_errors("service e-mails"):
            answered = self._client.get("/me/notification/email/history")
        if not isinstance(answered, list):
            raise CloudError("service e-mails: the OVH API answered no list")
        return {found for found in answered if isinstance(found, int)}

    def _rescue_email(self, service: str, baseline: set[int]) -> RescueCredentials:
        """The credentials of the first rescue e-mail for ``service`` not in ``baseline``."""
        deadline = self._clock() + self._mail_timeout
        read: set[int] = set(baseline)
        while True:
            for mail_id in sorted(self._email_ids() - read, reverse=True):
                read.add(mail_id)
                with api_errors("service e-mail"):
                    mail = self._client.get(f"/me/notification/email/history/{mail_id}")
                if not isinstance(mail, dict):
                    continue
                found = rescue_credentials(
                    service, _text(mail.get("subject")) or "", _text(mail.get("body")) or ""
                )
                if found is not None:
                    return found
            if self._clock() > deadline:
                raise CloudTimeoutError(
                    f"no rescue e-mail for VPS {service} arrived within {self._mail_timeout:.0f} s",
                    hint="the VPS was set back to netboot local and rebooted; if the e-mail "
                    "reaches you another way, retry with --rescue-password-stdin",
                )
            self._sleep(self._poll)

    def _trusted_link(self, link: str) -> bool:
        """Whether a secret link may be opened: the API's own origin, or https on one of
        OVHcloud's domains (never a link to anywhere else an e-mail could name)."""
        parsed = urlsplit(link)
        if self._origin is not None and f"{parsed.scheme}://{parsed.netloc}" == self._origin:
            return True
        host = (parsed.hostname or "").lower()
        return (
            parsed.scheme == "https"
            and parsed.username is None
            and parsed.port in (None, 443)
            and any(host == domain or host.endswith(f".{domain}") for domain in SECRET_DOMAINS)
        )

    def _password(self, service: str, credentials: RescueCredentials) -> str:
        """The rescue's password: in the e-mail, or on the secret page it links to."""
        if credentials.password is not None:
            return credentials.password
        link = credentials.link or ""
        if not self._trusted_link(link):
            raise CloudError(
                f"the rescue e-mail of VPS {service} links to a page outside OVHcloud's "
                "domains for its password: not opened",
                hint="open the e-mail yourself and use --rescue-password-stdin",
            )
        found = page_password(self._fetch(link))
        if found is None:
            raise CloudError(
                f"the secret page of the rescue e-mail of VPS {service} shows no password",
                hint="open the e-mail yourself and use --rescue-password-stdin",
            )
        return found

    def _back_to_local(self, service: str) -> None:
        """After a failed rescue: netboot local again, and a reboot when it is in rescue."""
        self._set_netboot(service, "local")
        if self._vps(service).get("state") in ("rescued", *BUSY_STATES):
            self._reboot(service)

    def rescue(
        self, server: ServerInfo, *, admin_password: str, image: ImageInfo | None
    ) -> RescueStarted:
        """Netboot rescue, reboot, and the password of the new rescue e-mail (or of the
        secret page it links to, or the one ``rescue_password`` gives).

        ``admin_password`` is not sent (the VPS API takes none). On any failure (Ctrl-C too,
        and a netboot change whose answer was lost) the netboot is set back to ``local`` (and
        the VPS rebooted out of rescue when it got there) before the error goes on.
        """
        if image is not None:
            self.find_image(image.name)
        service = server.id
        service_path(service)
        baseline = self._email_ids() if self._rescue_password is None else set()
        self._rescuing.add(service)
        try:
            try:
                self._set_netboot(service, "rescue")
                self._reboot(service)
                if self._rescue_password is not None:
                    password = self._rescue_password(service)
                else:
                    password = self._password(service, self._rescue_email(service, baseline))
            except BaseException as error:
                try:
                    self._back_to_local(service)
                except CloudRescueError as cleanup:
                    if isinstance(error, CloudRescueError):
                        error.hint = error.hint or (
                            f"setting VPS {service} back to local failed too "
                            f"({cleanup.message}): run `cloudrescue --provider {PROVIDER} "
                            f"unrescue {service}`"
                        )
                raise
        finally:
            self._rescuing.discard(service)
        return RescueStarted(admin_password=password)

    def unrescue(self, server_id: str) -> None:
        self._set_netboot(server_id, "local")
        self._reboot(server_id)

    def console_output(self, server_id: str, length: int | None = None) -> str:
        raise CloudError(
            f"VPS {server_id}: the OVH VPS API has no console log",
            hint=f"`cloudrescue --provider {PROVIDER} console url {server_id}` opens its KVM",
        )

    def console_url(self, server_id: str, console_type: str = "novnc") -> str:
        if console_type != "novnc":
            raise InvalidInputError(
                f"VPS {server_id}: the VPS API has only a noVNC console (and --vnc)"
            )
        with api_errors(f"console of VPS {server_id}"):
            answered = self._client.post(service_path(server_id, "getConsoleUrl"))
        if not isinstance(answered, str) or not answered.startswith(("https://", "http://")):
            raise CloudError(f"console of VPS {server_id}: the OVH API answered no URL")
        return answered

    def console_access(self, server_id: str, protocol: str = "VNCOverWebSocket") -> VncAccess:
        """``POST openConsoleAccess``: the VNC console's host, port and password."""
        if protocol not in VNC_PROTOCOLS:
            raise InvalidInputError(
                f"VNC protocol {protocol!r}: expected one of {', '.join(VNC_PROTOCOLS)}"
            )
        with api_errors(f"VNC console of VPS {server_id}"):
            answered = self._client.post(
                service_path(server_id, "openConsoleAccess"), protocol=protocol
            )
        host = answered.get("host") if isinstance(answered, dict) else None
        port = answered.get("port") if isinstance(answered, dict) else None
        password = answered.get("password") if isinstance(answered, dict) else None
        if (
            not isinstance(host, str)
            or not HOST.fullmatch(host.strip("[]"))
            or not isinstance(port, int)
            or isinstance(port, bool)
            or not 0 < port < 65536
            or not isinstance(password, str)
        ):
            raise CloudError(
                f"VNC console of VPS {server_id}: the OVH API answered no host, port and password"
            )
        return VncAccess(protocol, host.strip("[]"), port, password)

    def set_marks(self, server_id: str, marks: Mapping[str, str]) -> None:
        """A VPS has no metadata: the journal alone records the rescue."""

    def clear_marks(self, server_id: str, keys: tuple[str, ...]) -> None:
        """A VPS has no metadata: nothing to clear."""


def _text(value: object) -> str | None:
    """A field the API answered, as text when it is text (anything else is absent)."""
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class OvhSettings:
    """python-ovh's configuration as cloudrescue reads it: the endpoint (a URL one added to
    ``ovh.client.ENDPOINTS``), the ovh.conf named besides python-ovh's own, the request rate."""

    endpoint: str
    config_file: Path | None
    rate: float
    mail_timeout: float = MAIL_TIMEOUT

    @property
    def origin(self) -> str | None:
        """``scheme://host:port`` of an endpoint that is a URL (the lab's)."""
        if not self.endpoint.startswith(("http://", "https://")):
            return None
        parsed = urlsplit(self.endpoint)
        return f"{parsed.scheme}://{parsed.netloc}"

    @property
    def cloud_name(self) -> str:
        """The journal's name of this account: provider, endpoint, and the ovh.conf named
        (``resume`` reopens it from that: ``open_recorded_vps``)."""
        name = f"{PROVIDER}:{self.endpoint}"
        return f"{name}{CONFIG_MARK}{self.config_file}" if self.config_file else name

    def client(self) -> Any:
        """An ``ovh.Client`` on this configuration (its errors as cloudrescue's)."""
        import ovh

        with api_errors("OVH API configuration"):
            return ovh.Client(
                endpoint=self.endpoint,
                config_file=str(self.config_file) if self.config_file else None,
            )


def ovh_settings(
    *, config_file: Path | None = None, endpoint: str | None = None, api_rate: float | None = None
) -> OvhSettings:
    """python-ovh's configuration (``OVH_*``, its ovh.conf files, plus ``config_file``);
    ``endpoint`` instead of the configured one when given. The rate: ``api_rate`` when given
    (``--api-rate``), else the ``api_rate`` of the endpoint's configuration (``OVH_API_RATE``,
    or ``api_rate`` in its ovh.conf section: the lab's allows more), else ``FAIR_USE_RATE``."""
    from ovh import client as ovh_client
    from ovh import config as ovh_config

    if config_file is not None and not config_file.is_file():
        raise InvalidInputError(f"{CONFIG_VARIABLE}={config_file}: no such file")
    settings = ovh_config.ConfigurationManager()
    if config_file is not None:
        settings.read(str(config_file))
    endpoint = endpoint or settings.get("default", "endpoint")
    if not endpoint:
        raise InvalidInputError("no OVH API endpoint is configured", hint=NO_CONFIG_HINT)
    if not ENDPOINT.fullmatch(endpoint):
        raise InvalidInputError(
            f"OVH API endpoint {endpoint!r}: expected a name (ovh-eu, ovh-ca...) or an "
            "http(s):// URL", hint=NO_CONFIG_HINT
        )
    if endpoint.startswith(("http://", "https://")):
        ovh_client.ENDPOINTS.setdefault(endpoint, endpoint.rstrip("/"))
    rate = api_rate if api_rate is not None else _number(settings, endpoint, "api_rate")
    if rate is None:
        rate = FAIR_USE_RATE
    if not (rate > 0 and math.isfinite(rate)):
        raise InvalidInputError(f"the API request rate must be a positive number, not {rate}")
    mail_timeout = _number(settings, endpoint, "rescue_email_timeout")
    if mail_timeout is not None and not 0 < mail_timeout <= MAX_MAIL_TIMEOUT:
        raise InvalidInputError(
            f"OVH API configuration: rescue_email_timeout {mail_timeout:g} is not a number of "
            f"seconds from 1 to {MAX_MAIL_TIMEOUT:.0f}"
        )
    absolute = config_file.resolve() if config_file is not None else None
    return OvhSettings(endpoint, absolute, rate, mail_timeout or MAIL_TIMEOUT)


def _number(settings: Any, endpoint: str, name: str) -> float | None:
    """A number of the endpoint's configuration (``OVH_<NAME>``, or ``name`` in its ovh.conf
    section); None when it is not set."""
    configured = settings.get(endpoint, name)
    if not configured:
        return None
    try:
        return float(configured)
    except ValueError:
        raise InvalidInputError(
            f"OVH API configuration: {name} {configured!r} is no number"
        ) from None


def open_ovh_vps(
    *,
    config_file: Path | None = None,
    endpoint: str | None = None,
    api_rate: float | None = None,
    poll_interval: float = POLL_INTERVAL,
    rescue_password: Callable[[str], str] | None = None,
) -> OvhVpsCloud:
    """The backend on python-ovh's configuration (``ovh_settings``), at most its rate of
    requests a second, every one through ``cloud/retry.py``'s transport; tasks and e-mails
    read every ``poll_interval`` seconds; ``rescue_password`` (see ``OvhVpsCloud``)."""
    from cloudrescue.cloud import retry

    settings = ovh_settings(config_file=config_file, endpoint=endpoint, api_rate=api_rate)
    client = settings.client()
    limiter = retry.RateLimiter(settings.rate)
    sessions = [client._session]
    if client._oauth2 is not None:
        sessions.append(client._oauth2.session)
    for session in sessions:
        retry.install(session, limiter=limiter)
    return OvhVpsCloud(
        client,
        settings.cloud_name,
        poll_interval=poll_interval,
        mail_timeout=settings.mail_timeout,
        origin=settings.origin,
        rescue_password=rescue_password,
    )


def open_recorded_vps(name: str, *, api_rate: float | None = None) -> OvhVpsCloud:
    """The account a journal entry names (``OvhSettings.cloud_name``): its endpoint, and the
    ovh.conf it was read with."""
    endpoint, _, config = name.removeprefix(f"{PROVIDER}:").partition(CONFIG_MARK)
    if not endpoint:
        raise InvalidInputError(f"the journal's cloud {name!r} names no OVH API endpoint")
    if config and not Path(config).is_file():
        raise InvalidInputError(
            f"the ovh.conf this run was made with ({config}) is gone",
            hint=f"restore it, or take the VPS out of rescue with `cloudrescue --provider "
            f"{PROVIDER} unrescue VPS` (its journal entry is closed then)",
        )
    return open_ovh_vps(
        config_file=Path(config) if config else None, endpoint=endpoint, api_rate=api_rate
    )
