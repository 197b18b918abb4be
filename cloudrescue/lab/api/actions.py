"""``POST /servers/{id}/action`` (rescue, unrescue, start, stop, reboot, reset state, console)
and consoles."""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import string
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from cloudrescue.lab.api import schemas
from cloudrescue.lab.api import store as st
from cloudrescue.lab.api.consoles import CONSOLE_TYPES, CONSOLE_URLS
from cloudrescue.lab.api.error_bodies import NOT_FOUND, NovaError
from cloudrescue.lab.api.machine import RESCUE, check_state
from cloudrescue.lab.api.microversion import Version
from cloudrescue.lab.api.nova_common import Nova, NovaRequest
from cloudrescue.lab.api.store import ServerRecord
from cloudrescue.lab.model import RescueRequest

log = logging.getLogger(__name__)
router = APIRouter(prefix="/compute/v2.1/servers/{server_id}")

PASSWORD_LENGTH = 12
_PASSWORD_ALPHABET = "".join(c for c in string.ascii_letters + string.digits if c not in "0O1lI")
_CONSOLE_JUNK = re.compile("[\x00-\x08\x0b-\x1f]")
Handler = Callable[[Nova, ServerRecord, Any], Awaitable[Response]]


def generate_password() -> str:
    return "".join(secrets.choice(_PASSWORD_ALPHABET) for _ in range(PASSWORD_LENGTH))


def _log_failure(name: str) -> Callable[[Future[Any]], None]:
    def report(future: Future[Any]) -> None:
        if not future.cancelled() and future.exception() is not None:
            log.error("%s: operation failed: %s", name, future.exception())

    return report


def _accepted(future: Future[Any], record: ServerRecord) -> Response:
    future.add_done_callback(_log_failure(record.spec.name))
    return Response(status_code=202)


async def _rescue(nova: Nova, record: ServerRecord, params: dict[str, Any] | None) -> Response:
    params = params or {}
    password = params["adminPass"] if "adminPass" in params else generate_password()
    check_state(record, "rescue", RESCUE)
    image_ref = params.get("rescue_image_ref")
    image = nova.lab.images.get(image_ref or record.image_id)
    if image is None:
        raise NovaError(400, f"Requested rescue image '{image_ref}' is not supported")
    if record.spec.volume_backed and not (nova.at_least("2.87") and image.stable_rescue_capable):
        raise NovaError(
            400, f"Instance {record.id} cannot be rescued: Cannot rescue a volume-backed instance"
        )
    ignored = nova.lab.faults.rescue_password_ignored
    nova.lab.admin_passes[record.id] = params.get("adminPass")
    request = RescueRequest(
        admin_password=generate_password() if ignored else password,
        image_id=image.id,
        stable_device=image.asks_stable_rescue,
        forge_host_key_fingerprints=nova.lab.faults.forge_rescue_host_keys,
        guest_host_keys_at_shutdown=nova.lab.faults.guest_host_keys_at_shutdown,
        silent_host_keys=nova.lab.faults.rescue_host_keys_silent,
        ssh_cut=nova.lab.faults.ssh_cut(record.id, record.spec.name),
    )
    fails = nova.lab.faults.rescue_fails(record.id, record.spec.name)
    future = nova.lab.machine.rescue(record.id, request, fails=fails)
    future.add_done_callback(_log_failure(record.spec.name))
    shown = nova.lab.config.extra.get("enable_instance_password", True)
    return JSONResponse({"adminPass": password} if shown else {})


async def _unrescue(nova: Nova, record: ServerRecord, _params: object) -> Response:
    return _accepted(nova.lab.machine.unrescue(record.id), record)


async def _start(nova: Nova, record: ServerRecord, _params: object) -> Response:
    return _accepted(nova.lab.machine.start_server(record.id), record)


async def _stop(nova: Nova, record: ServerRecord, _params: object) -> Response:
    return _accepted(nova.lab.machine.stop_server(record.id), record)


async def _reboot(nova: Nova, record: ServerRecord, params: dict[str, Any]) -> Response:
    hard = params["type"].upper() == "HARD"
    return _accepted(nova.lab.machine.reboot(record.id, hard), record)


async def _reset_state(nova: Nova, record: ServerRecord, params: dict[str, Any]) -> Response:
    """Admin ``os-resetState`` (``openstack server set --state``): vm_state active or error,
    no task state, nothing else touched; 202 with no body, in any state (as nova)."""
    state = {"active": st.ACTIVE, "error": st.ERROR}[params["state"]]
    nova.lab.machine.reset_state(record.id, state)
    log.info("%s: state reset to %s", record.spec.name, state)
    return Response(status_code=202)


async def _console_output(nova: Nova, record: ServerRecord, params: dict[str, Any]) -> Response:
    length = params.get("length")
    lines = None if length is None or int(length) == -1 else int(length)
    try:
        output = await asyncio.wrap_future(nova.lab.machine.console_output(record.spec, lines))
    except FileNotFoundError:
        raise NovaError(404, "Guest does not have a console available.") from None
    return JSONResponse({"output": _CONSOLE_JUNK.sub("", output)})


def _console_url(nova: Nova, record: ServerRecord, protocol: str, console_type: str) -> str:
    """The URL nova's console proxy gives for ``protocol`` / ``console_type`` (as nova's API
    samples: noVNC's ``vnc_auto.html?path=%3Ftoken%3D...``, ``ws://.../?token=...`` for the
    serial console, ``spice_auto.html?token=...``), or nova's answer for the console types this
    lab does not have. Every console is served by the API's own address."""
    if record.vm_state == st.BUILDING:
        raise NovaError(409, f"Instance {record.id} is not ready")
    if protocol == "mks":
        raise NovaError(501, "The requested functionality is not supported.")
    if protocol not in CONSOLE_URLS or console_type == "spice-direct":
        raise NovaError(400, f"Unavailable console type {console_type}.")
    if console_type != CONSOLE_TYPES[protocol]:
        raise NovaError(400, f"Invalid console type {console_type}")
    token = nova.lab.consoles.issue(record.id)
    return CONSOLE_URLS[protocol](str(nova.request.base_url), token)


async def _vnc_console(nova: Nova, record: ServerRecord, params: dict[str, Any]) -> Response:
    url = _console_url(nova, record, "vnc", params["type"])
    return JSONResponse({"console": {"type": params["type"], "url": url}})


ACTIONS: dict[str, tuple[dict[str, Any], Handler, str | None]] = {
    "rescue": (schemas.RESCUE, _rescue, None),
    "unrescue": (schemas.UNRESCUE, _unrescue, None),
    "os-start": (schemas.START, _start, None),
    "os-stop": (schemas.STOP, _stop, None),
    "reboot": (schemas.REBOOT, _reboot, None),
    "os-resetState": (schemas.RESET_STATE, _reset_state, None),
    "os-getConsoleOutput": (schemas.CONSOLE_OUTPUT, _console_output, None),
    "os-getVNCConsole": (schemas.GET_VNC_CONSOLE, _vnc_console, "2.5"),
}


@router.post("/action")
async def server_action(server_id: str, nova: NovaRequest) -> Response:
    body = await nova.body()
    if not isinstance(body, dict) or len(body) != 1:
        raise NovaError(400, "Malformed request body")
    name = next(iter(body))
    if name not in ACTIONS:
        raise NovaError(400, f"There is no such action: {name}")
    schema, handler, max_version = ACTIONS[name]
    if max_version is not None and nova.version > Version.parse(max_version):
        raise NovaError(404, NOT_FOUND)
    schemas.validate(schema, body)
    return await handler(nova, nova.record(server_id), body[name])


@router.post("/remote-consoles")
async def create_remote_console(server_id: str, nova: NovaRequest) -> dict[str, Any]:
    nova.require("2.6")
    body = await nova.body()
    schema = schemas.remote_console_schema(
        mks=nova.at_least("2.8"), spice_direct=nova.at_least("2.99")
    )
    schemas.validate(schema, body)
    record = nova.record(server_id)
    protocol = body["remote_console"]["protocol"]
    console_type = body["remote_console"]["type"]
    if protocol == "rdp":
        raise NovaError(400, f"Unavailable console type {protocol}.")
    url = _console_url(nova, record, protocol, console_type)
    return {"remote_console": {"protocol": protocol, "type": console_type, "url": url}}
