"""Errors answered in the shape of the service that raises them (nova, keystone, glance, admin)."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

_NOVA_FAULT_NAMES = {
    400: "badRequest",
    401: "unauthorized",
    403: "forbidden",
    404: "itemNotFound",
    405: "badMethod",
    409: "conflictingRequest",
    413: "overLimit",
    415: "badMediaType",
    429: "overLimit",
    501: "notImplemented",
    503: "serviceUnavailable",
}

_HTTP_TITLES = {
    300: "Multiple Choices",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    409: "Conflict",
    413: "Request Entity Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}

NOT_FOUND = "The resource could not be found."
AUTH_REQUIRED = "The request you have made requires authentication."


def http_title(status: int) -> str:
    """The reason phrase of an HTTP status."""
    return _HTTP_TITLES.get(status, "Error")


class ApiError(Exception):
    """An error answered to the client; subclasses give the body its service's shape."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": self.message}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


class NovaError(ApiError):
    """``{"badRequest": {"code": 400, "message": ...}}`` like nova's ``Fault``; a 413 or 429
    with a ``Retry-After`` header also carries it as ``retryAfter`` (nova's ``overLimit``)."""

    def body(self) -> dict[str, Any]:
        name = _NOVA_FAULT_NAMES.get(self.status, "computeFault")
        fault: dict[str, Any] = {"code": self.status, "message": self.message}
        retry = self.headers.get("Retry-After")
        if self.status in (413, 429) and retry is not None:
            fault["retryAfter"] = retry
        return {name: fault}


class KeystoneError(ApiError):
    """``{"error": {"code": 401, "message": ..., "title": "Unauthorized"}}`` like keystone."""

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "code": self.status,
                "message": self.message,
                "title": http_title(self.status),
            }
        }


class GlanceError(ApiError):
    """The JSON body webob gives glance's errors."""

    def body(self) -> dict[str, Any]:
        return {
            "message": self.message,
            "code": f"{self.status} {http_title(self.status)}",
            "title": http_title(self.status),
        }


class OvhError(ApiError):
    """``{"errorCode": ..., "httpCode": "400 Bad Request", "message": ...}`` as the OVHcloud
    API answers (python-ovh reads ``errorCode`` and ``message``)."""

    def __init__(
        self,
        status: int,
        message: str,
        headers: dict[str, str] | None = None,
        *,
        code: str | None = None,
    ) -> None:
        super().__init__(status, message, headers)
        self.code = code

    def body(self) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "httpCode": f"{self.status} {http_title(self.status)}",
            "message": self.message,
        }
        if self.code is not None:
            answer["errorCode"] = self.code
        return answer


class AdminError(ApiError):
    """``{"error": message}`` for the lab's own ``/lab/v1`` API."""


def instance_not_found(server_id: str) -> NovaError:
    return NovaError(404, f"Instance {server_id} could not be found.")


def invalid_state(action: str, server_id: str, attr: str, state: object) -> NovaError:
    """Nova's 409 for an action refused in the instance's current vm_state or task_state."""
    return NovaError(409, f"Cannot '{action}' instance {server_id} while it is in {attr} {state}")


def error_for_path(
    path: str, status: int, message: str, headers: dict[str, str] | None = None
) -> ApiError:
    """An error shaped for the service that owns ``path``."""
    if path.startswith("/compute"):
        return NovaError(status, message, headers)
    if path.startswith("/identity"):
        return KeystoneError(status, message, headers)
    if path.startswith("/image"):
        return GlanceError(status, message, headers)
    if path.startswith("/ovh"):
        return OvhError(status, message, headers)
    return AdminError(status, message, headers)
