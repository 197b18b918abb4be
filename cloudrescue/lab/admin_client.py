"""A small client of the lab daemon's admin API (``/lab/v1``, header ``X-Lab-Token``)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from cloudrescue.errors import (
    CloudRescueError,
    ConflictError,
    InvalidInputError,
    LabError,
    NotFoundError,
)

ADMIN_HEADER = "X-Lab-Token"
_ERRORS: dict[int, type[CloudRescueError]] = {
    400: InvalidInputError,
    404: NotFoundError,
    409: ConflictError,
    422: InvalidInputError,
}


class DaemonUnreachableError(LabError):
    """The lab daemon does not answer (not started yet, stopped or crashed)."""


class AdminClient:
    """Calls ``http://127.0.0.1:<port>/lab/v1/...`` with the lab's admin token."""

    def __init__(self, port: int, token: str, *, timeout: float = 600) -> None:
        self.base = f"http://127.0.0.1:{port}/lab/v1"
        self._token = token
        self.timeout = timeout

    def call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """One request; the decoded JSON answer (errors become the error tree)."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 - always http://127.0.0.1
            self.base + path,
            data=data,
            method=method,
            headers={ADMIN_HEADER: self._token, "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout or self.timeout) as answer:  # noqa: S310
                raw = answer.read()
        except urllib.error.HTTPError as error:
            raise self._error(error) from None
        except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
            reason = getattr(error, "reason", error)
            raise DaemonUnreachableError(f"the lab daemon does not answer ({reason})") from None
        return json.loads(raw) if raw else {}

    @staticmethod
    def _error(error: urllib.error.HTTPError) -> CloudRescueError:
        try:
            payload = json.loads(error.read() or b"{}")
        except json.JSONDecodeError:
            payload = {}
        message = payload.get("error") or payload.get("detail") or error.reason
        if not isinstance(message, str):
            message = json.dumps(message)
        kind = _ERRORS.get(error.code, LabError)
        return kind(f"lab daemon: {message}")

    def health(self) -> dict[str, Any]:
        """``{"ready": bool, "instances": int}``."""
        return self.call("GET", "/health", timeout=5)

    def instances(self) -> list[dict[str, Any]]:
        """Every instance's view."""
        found: list[dict[str, Any]] = self.call("GET", "/instances", timeout=10)["instances"]
        return found

    def add(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create and boot an instance; its view."""
        created: dict[str, Any] = self.call("POST", "/instances", body)["instance"]
        return created

    def break_instance(self, ref: str, scenario: str) -> dict[str, Any]:
        """Break instance ``ref`` with ``scenario``."""
        return self.call("POST", f"/instances/{ref}/break", {"scenario": scenario})

    def write_files(self, ref: str, files: list[dict[str, Any]]) -> dict[str, Any]:
        """Write ``files`` (``{"path", "content", "mode"?, "uid"?, "gid"?}``) on instance
        ``ref``'s disk; it reboots with them."""
        return self.call("POST", f"/instances/{ref}/files", {"files": files})

    def bastion(self) -> dict[str, Any]:
        """The lab's bastion (made the first time): address, private_address, private_subnet,
        user, key, fingerprints, host_key_fingerprint."""
        made: dict[str, Any] = self.call("POST", "/bastion")["bastion"]
        return made

    def admin_pass(self, ref: str) -> str | None:
        """The adminPass instance ``ref``'s last rescue request carried."""
        found: str | None = self.call("GET", f"/instances/{ref}/admin-pass")["admin_pass"]
        return found

    def faults(self, method: str = "GET", body: dict[str, Any] | None = None) -> dict[str, Any]:
        """The daemon's injected faults (``PUT`` merges ``body``, ``DELETE`` clears)."""
        return self.call(method, "/faults", body)
