"""``CloudBackend`` on openstacksdk: any cloud from clouds.yaml, ``OS_*`` or ``--os-cloud``."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from cloudrescue.cloud.base import Address, ImageInfo, RescueStarted, ServerInfo
from cloudrescue.errors import (
    AmbiguousNameError,
    CloudError,
    InvalidInputError,
    NotFoundError,
    WrongStateError,
)

if TYPE_CHECKING:
    from cloudrescue.cloud.retry import Retry, RetryPolicy, Timing

STABLE_DEVICE_RESCUE = "2.87"
REGION_MARK = "@"  # in the journal's cloud name: "<cloud>@<region>"
NO_CLOUD = "no cloud is configured: no clouds.yaml entry was chosen and no OS_* variables are set"
NO_CLOUD_HINT = (
    "pass --os-cloud NAME (or set OS_CLOUD) for a clouds.yaml entry, or source your "
    "openrc.sh; `cloudrescue lab up` makes a local cloud to try things"
)
ENVIRONMENT_CLOUD = "envvars"  # the journal's name for a cloud given by OS_* variables
_UUID = re.compile(r"^[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}$")
T = TypeVar("T")


def _version_tuple(version: str | None) -> tuple[int, int]:
    if not version:
        return (2, 1)
    major, _, minor = version.partition(".")
    return (int(major), int(minor or 0))


@contextmanager
def _api_errors(what: str) -> Iterator[None]:
    """Turn openstacksdk / keystoneauth failures into one-line cloudrescue errors."""
    from keystoneauth1 import exceptions as ksa_exceptions
    from openstack import exceptions as sdk_exceptions

    try:
        yield
    except sdk_exceptions.NotFoundException as error:
        raise NotFoundError(f"{what}: {_detail(error)}") from error
    except sdk_exceptions.ConflictException as error:
        raise WrongStateError(f"{what}: {_detail(error)}") from error
    except sdk_exceptions.BadRequestException as error:
        raise CloudError(f"{what}: the cloud refused the request: {_detail(error)}") from error
    except sdk_exceptions.HttpException as error:
        status = getattr(error, "status_code", None)
        if status == 401:
            raise CloudError(f"{what}: authentication failed (check your credentials)") from error
        raise CloudError(f"{what}: HTTP {status}: {_detail(error)}{_retried(error)}") from error
    except sdk_exceptions.ConfigException as error:
        raise InvalidInputError(f"cloud configuration: {error}") from error
    except ksa_exceptions.SSLError as error:
        raise CloudError(
            f"{what}: the cloud's TLS certificate was not accepted ({_tls_reason(error)})",
            hint="give its CA with --os-cacert FILE (or OS_CACERT); --insecure skips the check",
        ) from error
    except (ksa_exceptions.ConnectFailure, ksa_exceptions.DiscoveryFailure) as error:
        raise CloudError(f"{what}: cannot reach the cloud API ({_reason(error)})") from error
    except ksa_exceptions.Unauthorized as error:
        raise CloudError(f"{what}: authentication failed (check your credentials)") from error
    except (ksa_exceptions.MissingRequiredOptions, ksa_exceptions.NoMatchingPlugin) as error:
        raise InvalidInputError(NO_CLOUD, hint=NO_CLOUD_HINT) from error
    except ksa_exceptions.ClientException as error:
        raise CloudError(f"{what}: {error}") from error


def _tls_reason(error: Exception) -> str:
    """Why the TLS handshake failed (``certificate verify failed: self-signed certificate``)
    and where, out of urllib3's nested exception text."""
    text = str(error)
    why = re.search(r"\] ([^(\]]+?) \(_ssl\.c", text)
    url = re.search(r"https://[^\s:'\"]+(?::\d+)?[^\s:'\"]*", text)
    parts = [why.group(1).strip() if why else None, f"at {url.group(0)}" if url else None]
    return ", ".join(part for part in parts if part) or text.splitlines()[0]


def _reason(error: Exception) -> str:
    """The useful end of a connection error (``[Errno 111] Connection refused``, the URL)."""
    text = str(error)
    errno = re.search(r"\[Errno -?\d+\] [^'\")]+", text)
    url = re.search(r"https?://[^\s:'\"]+(?::\d+)?[^\s:'\"]*", text)
    parts = [errno.group(0) if errno else None, f"at {url.group(0)}" if url else None]
    return ", ".join(part for part in parts if part) or text.splitlines()[0]


def _broken_config() -> str | None:
    """A clouds.yaml openstacksdk would read but cannot parse (it skips those silently)."""
    import yaml
    from openstack.config import loader

    given = os.environ.get("OS_CLIENT_CONFIG_FILE")
    for name in [*([given] if given else []), *loader.CONFIG_FILES]:
        path = Path(name)
        if not path.is_file() or path.suffix == ".json":
            continue
        try:
            yaml.safe_load(path.read_text())
        except (OSError, UnicodeDecodeError) as error:
            return f"{path} cannot be read: {error}"
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f":{mark.line + 1}" if mark is not None else ""
            problem = getattr(error, "problem", None) or str(error).splitlines()[0]
            return f"{path}{where} is not valid YAML ({problem})"
    return None


def _retried(error: Any) -> str:
    """`` (still refused after 6 attempts over 15.2 s)`` when the answer behind
    ``error`` was one the transport retried (``cloud/retry.py``) before it gave up."""
    from cloudrescue.cloud.retry import gave_up

    stopped = gave_up(getattr(error, "response", None))
    return f" ({stopped.describe()})" if stopped else ""


def _detail(error: Any) -> str:
    details = getattr(error, "details", None) or getattr(error, "message", None) or str(error)
    return str(details).strip().splitlines()[0] if str(details).strip() else "no details"


def _server_info(server: Mapping[str, Any]) -> ServerInfo:
    """A server as nova's JSON shows it (``GET /servers/detail`` or ``/servers/{id}``).

    Read from the JSON, not from openstacksdk's ``Server``: building that resource costs about
    5 ms of CPU a server, so a fleet's shared listing of a few hundred servers twice a second
    would hold the interpreter (every worker waits on it) and its waits would see RESCUE late.
    ``tags`` is None when the answer has none (nova reports them from 2.26 on)."""
    addresses: list[Address] = []
    for network, entries in (server.get("addresses") or {}).items():
        for entry in entries:
            addresses.append(
                Address(
                    ip=entry.get("addr", ""),
                    version=int(entry.get("version", 4)),
                    kind=entry.get("OS-EXT-IPS:type", "fixed") or "fixed",
                    network=network,
                )
            )
    image = server.get("image")
    image_id = image.get("id") if isinstance(image, Mapping) else (image or None)
    attached = server.get("os-extended-volumes:volumes_attached") or []
    volumes = tuple(v.get("id", "") for v in attached if v.get("id"))
    tags = server.get("tags")
    return ServerInfo(
        id=str(server["id"]),
        name=server.get("name") or "",
        status=server.get("status") or "UNKNOWN",
        task_state=server.get("OS-EXT-STS:task_state"),
        addresses=tuple(addresses),
        access_ipv4=server.get("accessIPv4") or None,
        image_id=image_id or None,
        volume_ids=volumes,
        metadata=dict(server.get("metadata") or {}),
        tags=None if tags is None else tuple(tags),
        fault=_fault(server.get("fault")),
    )


def _fault(fault: Any) -> str | None:
    """Nova's ``fault`` of a server (ERROR, DELETED) as one line: ``message (code N)``."""
    if not isinstance(fault, Mapping):
        return None
    message = str(fault.get("message") or "").strip()
    code = fault.get("code")
    if not message and code is None:
        return None
    text = " ".join(message.split()) or "no message"
    return f"{text} (code {code})" if code is not None else text


@dataclass(frozen=True)
class ConnectionOptions:
    """How to reach the cloud besides its credentials: region, CA bundle, TLS checks, and
    ``api_rate``, the most API requests a second this process sends (None: no cap)."""

    region: str | None = None
    cacert: str | None = None
    insecure: bool = False
    api_rate: float | None = None


class OpenStackCloud:
    """A ``CloudBackend`` talking to nova and glance through openstacksdk.

    One instance, one connection: it may be shared by every worker thread of a fleet run.
    Every HTTP request it makes (keystone, nova, glance, each page of a list) goes through
    ``cloud/retry.py``: answers 429, 503 and 413 ``overLimit`` are sent again after a jittered
    exponential wait that honours ``Retry-After``, within ``retry.MAX_ATTEMPTS`` sends and
    ``retry.MAX_TOTAL_WAIT`` seconds of waiting (``retry`` replaces that policy); a 403 (over
    quota) and any other 4xx are never retried.

    ``api_rate`` (or ``connection.api_rate``; the argument wins): at most that many requests
    a second across all threads, retries included (a token bucket of one request: evenly
    spaced); None: no cap. ``on_retry`` is told each retry before its wait (every retry is
    also logged, at ``-vv``, by ``cloudrescue.cloud.retry``); ``timing`` is the clock, sleep
    and randomness the waits use (tests give fakes).
    """

    def __init__(
        self,
        cloud: str | None = None,
        connection: ConnectionOptions | None = None,
        *,
        api_rate: float | None = None,
        retry: RetryPolicy | None = None,
        timing: Timing | None = None,
        on_retry: Callable[[Retry], None] | None = None,
    ) -> None:
        import openstack

        from cloudrescue.cloud import retry as transport

        given = connection or ConnectionOptions()
        rate = api_rate if api_rate is not None else given.api_rate
        if rate is not None and not (rate > 0 and math.isfinite(rate)):
            raise InvalidInputError(f"the API request rate must be a positive number, not {rate}")
        # keystoneauth's status-code retries off (openstacksdk turns them on for glance, 5 of
        # them): cloud/retry.py retries below it, and a request must not be retried twice.
        extra: dict[str, Any] = dict.fromkeys(transport.SDK_RETRY_OPTIONS, 0)
        if given.region:
            extra["region_name"] = given.region
        if given.cacert:
            extra["cacert"] = given.cacert
        if given.insecure:
            extra["verify"] = False
        try:
            with _api_errors("cloud configuration"):
                self._conn = (
                    openstack.connect(cloud=cloud, **extra)
                    if cloud
                    else openstack.connect(**extra)
                )
        except InvalidInputError as error:
            broken = _broken_config()
            if broken is not None:
                raise InvalidInputError(f"cloud configuration: {broken}") from error
            raise
        name = cloud or self._conn.config.name or ENVIRONMENT_CLOUD
        region = self._conn.config.region_name
        self._name = f"{name}{REGION_MARK}{region}" if given.region and region else name
        self.limiter = None if rate is None else transport.RateLimiter(rate, timing=timing)
        self._server_microversion: str | None = None  # found on the first server request
        # keystoneauth's Session sends everything through this one requests.Session.
        transport.install(
            self._conn.session.session,
            policy=retry,
            limiter=self.limiter,
            timing=timing,
            on_retry=on_retry,
        )

    @property
    def cloud_name(self) -> str:
        return self._name

    @property
    def announces_host_keys(self) -> bool:
        return True

    def _call(self, what: str, func: Callable[[], T]) -> T:
        with _api_errors(what):
            return func()

    def max_compute_microversion(self) -> str | None:
        """Highest compute microversion both this cloud and openstacksdk know."""

        def discover() -> str | None:
            data = self._conn.compute.get_endpoint_data()
            version = getattr(data, "max_microversion", None)
            return None if version is None else f"{version[0]}.{version[1]}"

        return self._call("compute version discovery", discover)

    def find_server(self, name_or_id: str) -> ServerInfo:
        if not name_or_id.strip():
            raise InvalidInputError("an instance name or ID is needed, not an empty one")
        if _UUID.match(name_or_id):
            try:
                return self.get_server(name_or_id)
            except NotFoundError:
                pass
        matches = [
            s
            for s in self.list_servers(name_regex=f"^{re.escape(name_or_id)}$")
            if s.name == name_or_id
        ]
        if not matches:
            raise NotFoundError(f"no instance named or with id {name_or_id!r}")
        if len(matches) > 1:
            listed = ", ".join(f"{s.id} ({s.status})" for s in matches)
            raise AmbiguousNameError(
                f"{len(matches)} instances are named {name_or_id!r}: {listed}; use an id"
            )
        return matches[0]

    def _compute_get(self, url: str, params: Mapping[str, Any] | None = None) -> Any:
        """``GET url`` on nova at the microversion openstacksdk would use for servers (the
        configured ``compute_api_version``, else the highest both know): the decoded JSON
        (an HTTP error raised as openstacksdk's, which ``_call`` maps)."""
        from openstack import exceptions as sdk_exceptions
        from openstack import utils as sdk_utils
        from openstack.compute.v2.server import Server

        if self._server_microversion is None:  # a compute_api_version configured, else the max
            self._server_microversion = self._conn.compute.default_microversion or (
                sdk_utils.maximum_supported_microversion(
                    self._conn.compute, Server._max_microversion
                )
            )
        response = self._conn.compute.get(
            url, params=params, microversion=self._server_microversion
        )
        sdk_exceptions.raise_from_response(response)
        return response.json()

    def get_server(self, server_id: str) -> ServerInfo:
        from urllib.parse import quote

        path = f"/servers/{quote(server_id, safe='')}"
        return self._call(
            f"instance {server_id}", lambda: _server_info(self._compute_get(path)["server"])
        )

    def list_servers(
        self,
        *,
        name_regex: str | None = None,
        tags: tuple[str, ...] = (),
        any_tags: tuple[str, ...] = (),
        not_any_tags: tuple[str, ...] = (),
        statuses: tuple[str, ...] = (),
    ) -> list[ServerInfo]:
        query: dict[str, Any] = {}
        if name_regex:
            query["name"] = name_regex
        for key, values in (("tags", tags), ("tags-any", any_tags), ("not-tags-any", not_any_tags)):
            if values:
                query[key] = ",".join(values)
        if statuses:
            query["status"] = list(statuses)  # repeated: nova takes every ``status`` given
        return self._call("listing instances", lambda: list(self._servers_detail(query)))

    def _servers_detail(self, query: Mapping[str, Any]) -> Iterator[ServerInfo]:
        """Every page of ``GET /servers/detail?query`` (nova's ``servers_links`` next)."""
        page = self._compute_get("/servers/detail", params=query)
        while True:
            yield from (_server_info(server) for server in page.get("servers", []))
            following = [
                link["href"] for link in page.get("servers_links", []) if link.get("rel") == "next"
            ]
            if not following:
                return
            page = self._compute_get(following[0])

    def find_image(self, name_or_id: str) -> ImageInfo:
        def find() -> ImageInfo:
            image = self._conn.image.find_image(name_or_id, ignore_missing=True)
            if image is None:
                raise NotFoundError(f"no image named or with id {name_or_id!r}")
            properties = {str(k): str(v) for k, v in (image.properties or {}).items()}
            for key in ("hw_rescue_device", "hw_rescue_bus"):
                value = getattr(image, key, None)
                if value:
                    properties[key] = str(value)
            return ImageInfo(id=image.id, name=image.name or "", properties=properties)

        from openstack import exceptions as sdk_exceptions

        try:
            return self._call(f"image {name_or_id}", find)
        except sdk_exceptions.DuplicateResource as error:
            raise AmbiguousNameError(
                f"several images are named {name_or_id!r}: use an id"
            ) from error

    def rescue(
        self, server: ServerInfo, *, admin_password: str, image: ImageInfo | None
    ) -> RescueStarted:
        max_version = self.max_compute_microversion()
        can_stable = _version_tuple(max_version) >= _version_tuple(STABLE_DEVICE_RESCUE)
        stable = bool(image and image.supports_stable_device_rescue and can_stable)
        if server.volume_backed and not stable:
            reason = (
                f"the cloud's compute API stops at microversion {max_version or '2.1'}"
                if not can_stable
                else "the rescue image lacks the hw_rescue_device/hw_rescue_bus properties"
                if image
                else "no rescue image was given"
            )
            raise CloudError(
                f"instance {server.name} is volume-backed: rescuing it needs compute microversion "
                f"{STABLE_DEVICE_RESCUE} and a rescue image with hw_rescue_device and "
                f"hw_rescue_bus properties, but {reason}",
                hint="pass --image with a stable-device rescue image",
            )
        body: dict[str, Any] = {"rescue": {"adminPass": admin_password}}
        if image is not None:
            body["rescue"]["rescue_image_ref"] = image.id

        def post() -> Any:
            from openstack import exceptions as sdk_exceptions

            response = self._conn.compute.post(
                f"/servers/{server.id}/action",
                json=body,
                microversion=STABLE_DEVICE_RESCUE if stable else None,
            )
            sdk_exceptions.raise_from_response(response)
            return response.json() if response.content else {}

        answer = self._call(f"rescue of {server.name}", post)
        returned = answer.get("adminPass") if isinstance(answer, dict) else None
        return RescueStarted(admin_password=returned or admin_password, stable_device=stable)

    def unrescue(self, server_id: str) -> None:
        self._call(
            f"unrescue of {server_id}", lambda: self._conn.compute.unrescue_server(server_id)
        )

    def console_output(self, server_id: str, length: int | None = None) -> str:
        def fetch() -> str:
            answer = self._conn.compute.get_server_console_output(server_id, length=length)
            return str(answer.get("output") or "")

        return self._call(f"console log of {server_id}", fetch)

    def console_url(self, server_id: str, console_type: str = "novnc") -> str:
        def create() -> str:
            answer = self._conn.compute.create_console(server_id, console_type=console_type)
            return str((answer or {}).get("url", ""))

        return self._call(f"console of {server_id}", create)

    def set_marks(self, server_id: str, marks: Mapping[str, str]) -> None:
        self._call(
            f"metadata of {server_id}",
            lambda: self._conn.compute.set_server_metadata(server_id, **marks),
        )

    def clear_marks(self, server_id: str, keys: tuple[str, ...]) -> None:
        def clear() -> None:
            present = _server_info(self._conn.compute.get_server(server_id)).metadata
            doomed = [key for key in keys if key in present]
            if doomed:
                self._conn.compute.delete_server_metadata(server_id, doomed)

        self._call(f"metadata of {server_id}", clear)


def open_recorded_openstack(
    name: str, connection: ConnectionOptions | None = None
) -> OpenStackCloud:
    """The cloud a journal entry names (``cloud_name`` when the rescue was started: the
    clouds.yaml entry or ``envvars``, and the region when one was chosen)."""
    cloud, _, region = name.partition(REGION_MARK)
    given = connection or ConnectionOptions()
    if region:
        given = replace(given, region=region)
    return OpenStackCloud(None if cloud == ENVIRONMENT_CLOUD else cloud, given)
