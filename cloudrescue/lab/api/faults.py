"""Injected faults (``/lab/v1/faults``): API errors, stalls, rate limits, quota refusals and
lost responses, slow transitions, late, forged or missing host keys, and faults of one
instance (its rescue fails, its rescue's SSH is cut) (docs/lab-design.md lists them)."""

from __future__ import annotations

import email.utils
import math
import re
import threading
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cloudrescue.lab.model import ShutdownHostKeys

SERVICE_PREFIXES = ("/identity", "/compute", "/image", "/ovh/1.0")


class _Matcher(BaseModel):
    model_config = ConfigDict(extra="forbid")

    count: int | None = Field(default=None, ge=1)
    method: str | None = None
    path_regex: str | None = None
    action: str | None = None  # a server action: the key of the POST /action body

    @field_validator("path_regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            re.compile(value)
        return value

    def matches(self, method: str, path: str, action: str | None = None) -> bool:
        if self.method and self.method.upper() != method.upper():
            return False
        if self.action is not None and self.action != action:
            return False
        return self.path_regex is None or re.search(self.path_regex, path) is not None


class ApiErrorFault(_Matcher):
    """Answer matching requests with a 5xx (every one, or the next ``count``), with a
    ``Retry-After`` header of ``retry_after`` seconds when given (a 503 may carry one)."""

    status: int = Field(default=503, ge=500, le=599)
    retry_after: int | None = Field(default=None, ge=0, le=86400)


class ApiStallFault(_Matcher):
    """Wait ``seconds`` before answering matching requests."""

    seconds: float = Field(gt=0, le=3600)


class ApiRateLimitFault(_Matcher):
    """Refuse matching requests as a rate limiter does: 429 (or 413, nova's older answer)
    with ``Retry-After`` and nova's ``overLimit`` body, without applying them."""

    status: Literal[429, 413] = 429
    retry_after: int = Field(default=1, ge=0, le=86400)  # seconds
    retry_after_format: Literal["seconds", "date"] = "seconds"  # "date": an HTTP date

    def header(self, now: float) -> str:
        """The ``Retry-After`` value at ``now`` (wall clock): seconds, or the HTTP date
        ``retry_after`` seconds from now (rounded up to a whole second)."""
        if self.retry_after_format == "seconds":
            return str(self.retry_after)
        return email.utils.formatdate(math.ceil(now + self.retry_after), usegmt=True)


class ApiOverQuotaFault(_Matcher):
    """Refuse matching requests as nova refuses what would exceed a quota: 403 ``forbidden``
    (never to be retried: waiting frees no quota), without applying them."""

    message: str = Field(
        default="Quota exceeded for instances: Requested 1, but already used 10 of 10 instances",
        min_length=1,
        max_length=255,
    )


InstanceRefs = list[str]  # ids or names of instances


class ApiLostResponseFault(_Matcher):
    """Apply matching requests, then answer ``status`` (504: what a proxy in front of a slow
    nova answers once its timeout passed, while nova goes on and applies the request)."""

    status: int = Field(default=504, ge=500, le=599)


class Faults(BaseModel):
    """The body of ``PUT /lab/v1/faults``: absent keys are left as they are, null clears one."""

    model_config = ConfigDict(extra="forbid")

    api_error: ApiErrorFault | None = None
    api_stall: ApiStallFault | None = None
    api_rate_limit: ApiRateLimitFault | None = None
    api_over_quota: ApiOverQuotaFault | None = None
    api_lost_response: ApiLostResponseFault | None = None
    transition_delay: float | None = Field(default=None, ge=0, le=3600)
    announce_delay: float | None = Field(default=None, ge=0, le=3600)
    forge_rescue_host_keys: bool | None = None
    rescue_host_keys_silent: bool | None = None
    guest_host_keys_at_shutdown: ShutdownHostKeys | None = None
    rescue_password_ignored: bool | None = None
    max_limit: int | None = Field(default=None, ge=1, le=1000)
    rescue_fails: InstanceRefs | None = Field(default=None, max_length=1000)
    ssh_cut: InstanceRefs | None = Field(default=None, max_length=1000)
    ovh_reboot_fails: InstanceRefs | None = Field(default=None, max_length=1000)
    ovh_rescue_email_link: InstanceRefs | None = Field(default=None, max_length=1000)
    ovh_no_rescue_email: InstanceRefs | None = Field(default=None, max_length=1000)


class FaultState:
    """The faults in force, shared by the middleware, the state machine and the admin API."""

    def __init__(self) -> None:
        self._faults = Faults()
        self._lock = threading.Lock()

    def merge(self, update: Faults) -> Faults:
        with self._lock:
            merged = self._faults.model_dump(exclude_none=True)
            given = update.model_dump()
            for name in update.model_fields_set:
                if given[name] is None:
                    merged.pop(name, None)
                else:
                    merged[name] = given[name]
            self._faults = Faults.model_validate(merged)
            return self._faults

    def clear(self) -> Faults:
        with self._lock:
            self._faults = Faults()
            return self._faults

    def current(self) -> dict[str, Any]:
        with self._lock:
            return self._faults.model_dump(exclude_none=True)

    @property
    def transition_delay(self) -> float | None:
        return self._faults.transition_delay

    @property
    def announce_delay(self) -> float | None:
        return self._faults.announce_delay

    @property
    def max_limit(self) -> int | None:
        """Servers per page at most (nova's ``[api] max_limit``; None: nova's default)."""
        return self._faults.max_limit

    @property
    def forge_rescue_host_keys(self) -> bool:
        return bool(self._faults.forge_rescue_host_keys)

    @property
    def rescue_host_keys_silent(self) -> bool:
        """The rescue's console gets no host-key block (its cloud-init does not print one)."""
        return bool(self._faults.rescue_host_keys_silent)

    @property
    def guest_host_keys_at_shutdown(self) -> ShutdownHostKeys | None:
        """What the guest prints on its console while it shuts down for a rescue."""
        return self._faults.guest_host_keys_at_shutdown

    @property
    def rescue_password_ignored(self) -> bool:
        """The rescue system gets a password of its own, not the one the API answers."""
        return bool(self._faults.rescue_password_ignored)

    def rescue_fails(self, server_id: str, name: str) -> bool:
        """Whether a rescue of this instance fails in the compute (``rescue_fails``)."""
        return _named(self._faults.rescue_fails, server_id, name)

    def ssh_cut(self, server_id: str, name: str) -> bool:
        """Whether this instance's rescue system is unreachable over SSH (``ssh_cut``)."""
        return _named(self._faults.ssh_cut, server_id, name)

    def ovh_reboot_fails(self, server_id: str, name: str) -> bool:
        """Whether a reboot task of this VPS ends in ``error`` (``ovh_reboot_fails``)."""
        return _named(self._faults.ovh_reboot_fails, server_id, name)

    def ovh_rescue_email(self, server_id: str, name: str) -> Literal["password", "link", "none"]:
        """How the rescue e-mail of this VPS gives its password: in its body, as a link to a
        one-time secret page (``ovh_rescue_email_link``), or not at all: no e-mail is sent
        (``ovh_no_rescue_email``)."""
        if _named(self._faults.ovh_no_rescue_email, server_id, name):
            return "none"
        return "link" if _named(self._faults.ovh_rescue_email_link, server_id, name) else "password"

    def _take(
        self, name: str, method: str, path: str, action: str | None = None
    ) -> _Matcher | None:
        """The request fault ``name`` if it hits this request, counting it against it;
        ``action`` is the server action the request asks for (None for any other request)."""
        with self._lock:
            fault: _Matcher | None = getattr(self._faults, name)
            if fault is None or not fault.matches(method, path, action):
                return None
            if fault.count is not None:
                left = fault.count - 1
                setattr(
                    self._faults, name, fault.model_copy(update={"count": left}) if left else None
                )
            return fault

    def take_error(self, method: str, path: str, action: str | None = None) -> ApiErrorFault | None:
        """The error to fail this request with."""
        fault = self._take("api_error", method, path, action)
        return fault if isinstance(fault, ApiErrorFault) else None

    def take_stall(self, method: str, path: str, action: str | None = None) -> float | None:
        """How long to hold this request."""
        fault = self._take("api_stall", method, path, action)
        return fault.seconds if isinstance(fault, ApiStallFault) else None

    def take_rate_limit(
        self, method: str, path: str, action: str | None = None
    ) -> ApiRateLimitFault | None:
        """The rate limit that refuses this request."""
        fault = self._take("api_rate_limit", method, path, action)
        return fault if isinstance(fault, ApiRateLimitFault) else None

    def take_over_quota(self, method: str, path: str, action: str | None = None) -> str | None:
        """The quota message to refuse this request with."""
        fault = self._take("api_over_quota", method, path, action)
        return fault.message if isinstance(fault, ApiOverQuotaFault) else None

    def take_lost_response(self, method: str, path: str, action: str | None = None) -> int | None:
        """The status to answer once this request is applied (its real answer is lost)."""
        fault = self._take("api_lost_response", method, path, action)
        return fault.status if isinstance(fault, ApiLostResponseFault) else None


def _named(refs: InstanceRefs | None, server_id: str, name: str) -> bool:
    return refs is not None and (server_id in refs or name in refs)


def applies_to(path: str) -> bool:
    """Faults hit keystone, nova, glance and the OVH API, never the admin API."""
    return path.startswith(SERVICE_PREFIXES)
