"""Injected faults (``/lab/v1/faults``): API errors, stalls, slow transitions, forged host keys."""

from __future__ import annotations

import re
import threading
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

SERVICE_PREFIXES = ("/identity", "/compute", "/image")


class _Matcher(BaseModel):
    model_config = ConfigDict(extra="forbid")

    count: int | None = Field(default=None, ge=1)
    method: str | None = None
    path_regex: str | None = None

    @field_validator("path_regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            re.compile(value)
        return value

    def matches(self, method: str, path: str) -> bool:
        if self.method and self.method.upper() != method.upper():
            return False
        return self.path_regex is None or re.search(self.path_regex, path) is not None


class ApiErrorFault(_Matcher):
    """Answer matching requests with a 5xx (every one, or the next ``count``)."""

    status: int = Field(default=503, ge=500, le=599)


class ApiStallFault(_Matcher):
    """Wait ``seconds`` before answering matching requests."""

    seconds: float = Field(gt=0, le=3600)


class Faults(BaseModel):
    """The body of ``PUT /lab/v1/faults``: absent keys are left as they are, null clears one."""

    model_config = ConfigDict(extra="forbid")

    api_error: ApiErrorFault | None = None
    api_stall: ApiStallFault | None = None
    transition_delay: float | None = Field(default=None, ge=0, le=3600)
    forge_rescue_host_keys: bool | None = None
    rescue_password_ignored: bool | None = None


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
    def forge_rescue_host_keys(self) -> bool:
        return bool(self._faults.forge_rescue_host_keys)

    @property
    def rescue_password_ignored(self) -> bool:
        """The rescue system gets a password of its own, not the one the API answers."""
        return bool(self._faults.rescue_password_ignored)

    def take_error(self, method: str, path: str) -> int | None:
        """The status to fail this request with, counting it against the fault."""
        with self._lock:
            fault = self._faults.api_error
            if fault is None or not fault.matches(method, path):
                return None
            if fault.count is not None:
                left = fault.count - 1
                self._faults.api_error = fault.model_copy(update={"count": left}) if left else None
            return fault.status

    def take_stall(self, method: str, path: str) -> float | None:
        """How long to hold this request, counting it against the fault."""
        with self._lock:
            fault = self._faults.api_stall
            if fault is None or not fault.matches(method, path):
                return None
            if fault.count is not None:
                left = fault.count - 1
                self._faults.api_stall = fault.model_copy(update={"count": left}) if left else None
            return fault.seconds


def applies_to(path: str) -> bool:
    """Faults hit keystone, nova and glance, never the admin API."""
    return path.startswith(SERVICE_PREFIXES)
