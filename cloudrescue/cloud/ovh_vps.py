"""``CloudBackend`` for OVHcloud VPS on python-ovh (``--provider ovh-vps``).

A VPS is rescued by its netboot mode: ``PUT /vps/{sn}`` ``netbootMode=rescue``, then
``POST /vps/{sn}/reboot`` and its task followed to ``done``; OVHcloud then mails the rescue's
SSH credentials (also kept in the account's service e-mails, ``/me/notification/email``). The
password cloudrescue asked for is not used: the one that counts is the e-mail's. Leaving is
``netbootMode=local`` and another reboot.

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
from pathlib import Path
from typing import Any, Protocol

from cloudrescue.cloud.base import Address, ImageInfo, RescueStarted, ServerInfo
from cloudrescue.cloud.ovh_mail import RescueCredentials, rescue_credentials
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
MAIL_TIMEOUT = 300.0
NETBOOT_READS = 10  # reads of the netboot mode after a PUT, POLL_INTERVAL apart
TASK_DONE = "done"
TASK_FAILED = frozenset({"error", "cancelled", "blocked"})
BUSY_STATES = frozenset({"rebooting", "stopping"})
NO_CONFIG_HINT = (
    "set OVH_ENDPOINT, OVH_APPLICATION_KEY, OVH_APPLICATION_SECRET and OVH_CONSUMER_KEY, or "
    f"write an ovh.conf (python-ovh's format; {CONFIG_VARIABLE} names one)"
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
def _api_errors(what: str) -> Iterator[None]:
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
    except ovh_errors.InvalidKey as error:  # raised before sending: a key or secret is missing
        raise InvalidInputError(
            "OVH API configuration: the application secret or the consumer key is missing",
            hint=NO_CONFIG_HINT,
        ) from error
    except ovh_errors.APIError as error:
        code = _error_code(error)
        if code in AUTH_ERRORS:
            raise CloudError(f"{what}: authentication failed: {AUTH_ERRORS[code]}") from error
        if code == "NOT_GRANTED_CALL":
            raise CloudError(
                f"{what}: the consumer key is not allowed this call ({_message(error)})",
                hint="its access rules need GET/PUT/POST on /vps/* and GET on "
                "/me/notification/email/*",
            ) from error
        response = getattr(error, "response", None)
        status = getattr(response, "status_code", None)
        stopped = gave_up(response)
        retried = f" ({stopped.describe()})" if stopped else ""
        raise CloudError(f"{what}: HTTP {status}: {_message(error)}{retried}") from error


class OvhVpsCloud:
    """A ``CloudBackend`` on the OVHcloud VPS API through ``client`` (an ``ovh.Client``).

    ``clock`` and ``sleep`` are the time the task and e-mail waits use (tests give fakes).
    """

    announces_host_keys = False  # the VPS API has no console log to read host keys from

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
    ) -> None:
        self._client = client
        self._name = name
        self._poll = poll_interval
        self._task_timeout = task_timeout
        self._mail_timeout = mail_timeout
        self._clock = clock
        self._sleep = sleep
        self._addresses: dict[str, tuple[Address, ...]] = {}
        self._rescuing: set[str] = set()

    @property
    def cloud_name(self) -> str:
        return self._name

    # -- reading ----------------------------------------------------------------------------

    def _vps(self, service: str) -> dict[str, Any]:
        with _api_errors(f"VPS {service}"):
            found = self._client.get(f"/vps/{service}")
        if not isinstance(found, dict):
            raise CloudError(f"VPS {service}: the OVH API answered something else than a VPS")
        return found

    def _ips(self, service: str) -> tuple[Address, ...]:
        if service not in self._addresses:
            with _api_errors(f"addresses of VPS {service}"):
                ips = self._client.get(f"/vps/{service}/ips")
            self._addresses[service] = tuple(
                Address(ip=str(ip), version=6 if ":" in str(ip) else 4, kind="fixed",
                        network="public")
                for ip in ips or ()
            )  # fmt: skip
        return self._addresses[service]

    def _info(self, vps: dict[str, Any]) -> ServerInfo:
        service = str(vps.get("name") or "")
        status, task_state = vps_status(
            vps.get("netbootMode"), vps.get("state"), rescue_pending=service in self._rescuing
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
        if not name_or_id.strip() or "/" in name_or_id:
            raise InvalidInputError(f"{name_or_id!r} is not a VPS service name")
        try:
            return self.get_server(name_or_id)
        except NotFoundError:
            raise NotFoundError(f"no VPS named {name_or_id!r} in this OVHcloud account") from None

    def get_server(self, server_id: str) -> ServerInfo:
        return self._info(self._vps(server_id))

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
        with _api_errors("listing VPS"):
            names = [str(name) for name in self._client.get("/vps") or ()]
        pattern = re.compile(name_regex, re.IGNORECASE) if name_regex else None
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
        with _api_errors(f"netboot mode of VPS {service}"):
            self._client.put(f"/vps/{service}", netbootMode=mode)
        for _ in range(NETBOOT_READS):
            if self._vps(service).get("netbootMode") == mode:
                return
            self._sleep(self._poll)
        raise CloudError(f"VPS {service}: its netboot mode does not read back as {mode!r}")

    def _reboot(self, service: str) -> None:
        """Reboot and follow the task until ``done``; a failed task is a ``CloudError``."""
        with _api_errors(f"reboot of VPS {service}"):
            task = self._client.post(f"/vps/{service}/reboot")
        task_id = task.get("id") if isinstance(task, dict) else None
        if task_id is None:
            raise CloudError(f"reboot of VPS {service}: the OVH API gave no task")
        deadline = self._clock() + self._task_timeout
        state = str(task.get("state") or "todo")
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
                with _api_errors(f"reboot task of VPS {service}"):
                    task = self._client.get(f"/vps/{service}/tasks/{task_id}")
            except NotFoundError:
                return  # finished tasks are removed from the list after a while
            state = str(task.get("state") or "") if isinstance(task, dict) else ""

    def _email_ids(self) -> set[int]:
        with _api_errors("service e-mails"):
            return {int(found) for found in self._client.get("/me/notification/email/history")}

    def _rescue_email(self, service: str, baseline: set[int]) -> RescueCredentials:
        """The credentials of the first rescue e-mail for ``service`` not in ``baseline``."""
        deadline = self._clock() + self._mail_timeout
        read: set[int] = set(baseline)
        while True:
            for mail_id in sorted(self._email_ids() - read, reverse=True):
                read.add(mail_id)
                with _api_errors("service e-mail"):
                    mail = self._client.get(f"/me/notification/email/history/{mail_id}")
                if not isinstance(mail, dict):
                    continue
                found = rescue_credentials(
                    service, str(mail.get("subject") or ""), str(mail.get("body") or "")
                )
                if found is not None:
                    return found
            if self._clock() > deadline:
                raise CloudTimeoutError(
                    f"no rescue e-mail for VPS {service} arrived within {self._mail_timeout:.0f} s"
                )
            self._sleep(self._poll)

    def _back_to_local(self, service: str) -> None:
        """After a failed rescue: netboot local again, and a reboot when it is in rescue."""
        self._set_netboot(service, "local")
        if self._vps(service).get("state") in ("rescued", *BUSY_STATES):
            self._reboot(service)

    def rescue(
        self, server: ServerInfo, *, admin_password: str, image: ImageInfo | None
    ) -> RescueStarted:
        """Netboot rescue, reboot, and the credentials of the new rescue e-mail.

        ``admin_password`` is not sent (the VPS API takes none); the e-mail's password is
        returned. On any failure (Ctrl-C too) the netboot is set back to ``local`` (and the
        VPS rebooted out of rescue when it got there) before the error goes on.
        """
        if image is not None:
            self.find_image(image.name)
        service = server.id
        baseline = self._email_ids()
        self._rescuing.add(service)
        try:
            self._set_netboot(service, "rescue")
            try:
                self._reboot(service)
                credentials = self._rescue_email(service, baseline)
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
        return RescueStarted(admin_password=credentials.password)

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
            raise CloudError(f"VPS {server_id}: the VPS API has only a noVNC console")
        with _api_errors(f"console of VPS {server_id}"):
            return str(self._client.post(f"/vps/{server_id}/getConsoleUrl"))

    def set_marks(self, server_id: str, marks: Mapping[str, str]) -> None:
        """A VPS has no metadata: the journal alone records the rescue."""

    def clear_marks(self, server_id: str, keys: tuple[str, ...]) -> None:
        """A VPS has no metadata: nothing to clear."""


def open_ovh_vps(
    *,
    config_file: Path | None = None,
    api_rate: float | None = None,
    poll_interval: float = POLL_INTERVAL,
) -> OvhVpsCloud:
    """The backend on python-ovh's configuration (see the module docstring), at most
    ``api_rate`` requests a second (``--api-rate``); else the ``api_rate`` of the endpoint's
    configuration (``OVH_API_RATE``, or ``api_rate`` in its ovh.conf section: the lab's
    allows more), else ``FAIR_USE_RATE``; tasks and e-mails read every ``poll_interval``
    seconds."""
    import ovh
    from ovh import client as ovh_client
    from ovh import config as ovh_config

    from cloudrescue.cloud import retry

    if config_file is not None and not config_file.is_file():
        raise InvalidInputError(f"{CONFIG_VARIABLE}={config_file}: no such file")
    settings = ovh_config.ConfigurationManager()
    if config_file is not None:
        settings.read(str(config_file))
    endpoint = settings.get("default", "endpoint")
    if not endpoint:
        raise InvalidInputError("no OVH API endpoint is configured", hint=NO_CONFIG_HINT)
    if endpoint.startswith(("http://", "https://")):
        ovh_client.ENDPOINTS.setdefault(endpoint, endpoint.rstrip("/"))
    configured = settings.get(endpoint, "api_rate")
    try:
        rate = api_rate if api_rate is not None else float(configured or FAIR_USE_RATE)
    except ValueError:
        raise InvalidInputError(
            f"OVH API configuration: api_rate {configured!r} is no number"
        ) from None
    if not (rate > 0 and math.isfinite(rate)):
        raise InvalidInputError(f"the API request rate must be a positive number, not {rate}")
    with _api_errors("OVH API configuration"):
        client = ovh.Client(
            endpoint=endpoint, config_file=str(config_file) if config_file else None
        )
    limiter = retry.RateLimiter(rate)
    sessions = [client._session]
    if client._oauth2 is not None:
        sessions.append(client._oauth2.session)
    for session in sessions:
        retry.install(session, limiter=limiter)
    return OvhVpsCloud(client, f"{PROVIDER}:{endpoint}", poll_interval=poll_interval)
