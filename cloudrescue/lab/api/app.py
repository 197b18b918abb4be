"""The FastAPI application: routers, nova/keystone/glance-shaped errors, faults, request log."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from cloudrescue.lab.api import actions, admin, glance, keystone, nova, ovh, server_meta
from cloudrescue.lab.api.consoles import PAGES, console_page, invalid_token_page, token_from_query
from cloudrescue.lab.api.error_bodies import (
    NOT_FOUND,
    ApiError,
    NovaError,
    error_for_path,
    http_title,
)
from cloudrescue.lab.api.faults import applies_to
from cloudrescue.lab.api.microversion import response_headers
from cloudrescue.lab.api.service import LabService, lab_of

log = logging.getLogger("cloudrescue.lab.api")
Next = Callable[[Request], Awaitable[Response]]
CONSOLE_LOG_LINES = 200


def create_app(lab: LabService) -> FastAPI:
    """The daemon's ASGI app around ``lab``."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await lab.start()
        yield
        await lab.stop()

    app = FastAPI(lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)
    app.state.lab = lab
    for router in (
        keystone.router,
        nova.versions_router,
        nova.router,
        server_meta.router,
        actions.router,
        glance.versions_router,
        glance.router,
        admin.router,
        ovh.router,
        ovh.vps_router,
        ovh.validation_router,
    ):
        app.include_router(router)
    for page in PAGES:
        app.add_api_route(page, console, methods=["GET"], response_class=HTMLResponse)
    _add_error_handlers(app)
    app.middleware("http")(_microversion_headers)
    app.middleware("http")(_faults)
    app.middleware("http")(_request_log)
    return app


async def console(request: Request, path: str | None = None, token: str | None = None) -> Response:
    """The page behind a noVNC URL: the console log, since the lab has no VNC server."""
    lab = lab_of(request)
    server_id = lab.consoles.resolve(token_from_query(path, token))
    record = lab.store.get(server_id) if server_id else None
    if record is None:
        return HTMLResponse(invalid_token_page(), status_code=404)
    log_text = await asyncio.wrap_future(lab.machine.console_output(record.spec, CONSOLE_LOG_LINES))
    return HTMLResponse(console_page(record.spec.name, record.id, record.status, log_text))


def _add_error_handlers(app: FastAPI) -> None:
    async def api_error(_request: Request, error: Exception) -> Response:
        assert isinstance(error, ApiError)
        return error.response()

    async def http_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, StarletteHTTPException)
        message = NOT_FOUND if error.status_code == 404 else http_title(error.status_code)
        return error_for_path(request.url.path, error.status_code, message).response()

    async def invalid_request(request: Request, error: Exception) -> Response:
        assert isinstance(error, RequestValidationError)
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}"
            for e in error.errors()
        )
        return error_for_path(request.url.path, 400, problems or "invalid request").response()

    async def unexpected(request: Request, error: Exception) -> Response:
        log.error("unexpected %s on %s %s", type(error).__name__, request.method, request.url.path)
        message = f"Unexpected API Error. {type(error).__name__}"
        return error_for_path(request.url.path, 500, message).response()

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(Exception, unexpected)


async def _microversion_headers(request: Request, call_next: Next) -> Response:
    """Echo the compute microversion on every versioned nova answer (with ``Vary``)."""
    response = await call_next(request)
    version = getattr(request.state, "microversion", None)
    if version is not None:
        response.headers.update(response_headers(version))
    return response


RATE_LIMITED = "This request was rate-limited."  # nova's RateLimitFault message


async def _faults(request: Request, call_next: Next) -> Response:
    """Injected stalls, errors, rate limits, quota refusals and lost responses, for keystone,
    nova and glance only (in that order: a request one of them answers is not counted by the
    ones after it)."""
    path = request.url.path
    if not applies_to(path):
        return await call_next(request)
    faults = lab_of(request).faults
    action = await _server_action(request)
    stall = faults.take_stall(request.method, path, action)
    if stall:
        log.info("fault: stalling %s %s for %.1fs", request.method, path, stall)
        await asyncio.sleep(stall)
    error = faults.take_error(request.method, path, action)
    if error is not None:
        log.info("fault: answering %s %s with %d", request.method, path, error.status)
        headers = {} if error.retry_after is None else {"Retry-After": str(error.retry_after)}
        message = f"Injected fault: {http_title(error.status)}"
        return NovaError(error.status, message, headers).response()
    limit = faults.take_rate_limit(request.method, path, action)
    if limit is not None:
        retry_after = limit.header(time.time())
        log.info(
            "fault: rate limit on %s %s: %d, Retry-After %s", request.method, path,
            limit.status, retry_after,
        )  # fmt: skip
        headers = {"Retry-After": retry_after}
        return error_for_path(path, limit.status, RATE_LIMITED, headers).response()
    quota = faults.take_over_quota(request.method, path, action)
    if quota is not None:
        log.info("fault: over quota on %s %s: 403", request.method, path)
        return error_for_path(path, 403, quota).response()
    lost = faults.take_lost_response(request.method, path, action)
    response = await call_next(request)
    if lost is None:
        return response
    body = getattr(response, "body_iterator", None)
    if body is not None:
        async for _chunk in body:  # the request is applied to the end, its answer dropped
            pass
    log.info(
        "fault: %s %s applied (%d), the client gets %d", request.method, path,
        response.status_code, lost,
    )  # fmt: skip
    return HTMLResponse(proxy_error_page(lost), status_code=lost)


async def _server_action(request: Request) -> str | None:
    """The server action a ``POST .../action`` asks for (its body's one key), else None."""
    if request.method != "POST" or not request.url.path.endswith("/action"):
        return None
    try:
        body = json.loads(await request.body())
    except ValueError:
        return None
    return next(iter(body)) if isinstance(body, dict) and len(body) == 1 else None


def proxy_error_page(status: int) -> str:
    """The page a reverse proxy (HAProxy's wording) answers when the backend is too slow."""
    title = {504: "Gateway Time-out"}.get(status, http_title(status))
    reason = {
        502: "The server returned an invalid or incomplete response.",
        503: "No server is available to handle this request.",
        504: "The server didn't respond in time.",
    }.get(status, "The server could not complete the request.")
    return f"<html><body><h1>{status} {title}</h1>\n{reason}\n</body></html>\n"


async def _request_log(request: Request, call_next: Next) -> Response:
    """One line per request (method, path, status, time), never headers, query or body."""
    started = time.monotonic()
    try:
        response = await call_next(request)
    except Exception:
        log.info("%s %s -> 500", request.method, request.url.path)
        raise
    request_id = f"req-{uuid.uuid4()}"
    response.headers["x-openstack-request-id"] = request_id
    if request.url.path.startswith("/compute"):
        response.headers["x-compute-request-id"] = request_id
    elapsed = (time.monotonic() - started) * 1000
    log.info(
        "%s %s -> %d (%.0f ms)", request.method, request.url.path, response.status_code, elapsed
    )
    return response
