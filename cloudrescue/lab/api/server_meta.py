"""Server metadata and server tags (2.26+), with nova's validation and state checks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jsonschema
from fastapi import APIRouter, Response

from cloudrescue.lab.api import schemas
from cloudrescue.lab.api import store as st
from cloudrescue.lab.api.error_bodies import NovaError, instance_not_found, invalid_state
from cloudrescue.lab.api.nova_common import Nova, NovaRequest
from cloudrescue.lab.api.store import ServerRecord

router = APIRouter(prefix="/compute/v2.1/servers/{server_id}")

METADATA_QUOTA = 128
_METADATA_STATES = (st.ACTIVE, "paused", "suspended", st.STOPPED)


def _change(
    nova: Nova,
    server_id: str,
    action: str,
    change: Callable[[ServerRecord], Any],
    *,
    launched: bool = False,
) -> Any:
    """Apply ``change`` if the server's vm_state allows ``action``.

    Nova checks only the vm_state for metadata (``update_instance_metadata`` and
    ``delete_instance_metadata`` pass ``task_state=None`` to ``check_instance_state``: no task
    state check, but ``must_have_launched``: ``launched``) and for tags
    (``_check_instance_in_valid_state``), so both are allowed while a task such as
    ``rescuing`` runs.
    """
    try:
        with nova.lab.store.edit(server_id) as record:
            if record.vm_state not in _METADATA_STATES:
                raise invalid_state(action, server_id, "vm_state", record.vm_state)
            if launched and record.launched_at is None:
                raise invalid_state(action, server_id, "launched_at", None)
            return change(record)
    except KeyError:
        raise instance_not_found(server_id) from None


def _set_metadata(
    nova: Nova, server_id: str, items: dict[str, str], replace: bool
) -> dict[str, str]:
    def change(record: ServerRecord) -> dict[str, str]:
        metadata = dict(items) if replace else {**record.metadata, **items}
        if len(metadata) > METADATA_QUOTA:
            raise NovaError(403, f"Maximum number of metadata items exceeds {METADATA_QUOTA}")
        record.metadata = metadata
        return dict(metadata)

    updated: dict[str, str] = _change(nova, server_id, "update metadata", change, launched=True)
    return updated


@router.get("/metadata")
async def list_metadata(server_id: str, nova: NovaRequest) -> dict[str, Any]:
    return {"metadata": nova.record(server_id).metadata}


@router.post("/metadata")
async def merge_metadata(server_id: str, nova: NovaRequest) -> dict[str, Any]:
    body = await nova.body()
    schemas.validate(schemas.METADATA, body)
    return {"metadata": _set_metadata(nova, server_id, body["metadata"], replace=False)}


@router.put("/metadata")
async def replace_metadata(server_id: str, nova: NovaRequest) -> dict[str, Any]:
    body = await nova.body()
    schemas.validate(schemas.METADATA, body)
    return {"metadata": _set_metadata(nova, server_id, body["metadata"], replace=True)}


@router.get("/metadata/{key}")
async def show_metadata_item(server_id: str, key: str, nova: NovaRequest) -> dict[str, Any]:
    metadata = nova.record(server_id).metadata
    if key not in metadata:
        raise NovaError(404, "Metadata item was not found")
    return {"meta": {key: metadata[key]}}


@router.put("/metadata/{key}")
async def set_metadata_item(server_id: str, key: str, nova: NovaRequest) -> dict[str, Any]:
    body = await nova.body()
    schemas.validate(schemas.METADATA_ITEM, body)
    nova.record(server_id)
    item = body["meta"]
    if key not in item:
        raise NovaError(400, "Request body and URI mismatch")
    _set_metadata(nova, server_id, item, replace=False)
    return {"meta": item}


@router.delete("/metadata/{key}", status_code=204)
async def delete_metadata_item(server_id: str, key: str, nova: NovaRequest) -> Response:
    if key not in nova.record(server_id).metadata:
        raise NovaError(404, "Metadata item was not found")

    def change(record: ServerRecord) -> None:
        record.metadata.pop(key, None)

    _change(nova, server_id, "delete metadata", change, launched=True)
    return Response(status_code=204)


@router.get("/tags")
async def list_tags(server_id: str, nova: NovaRequest) -> dict[str, Any]:
    nova.require("2.26")
    return {"tags": nova.record(server_id).tags}


@router.put("/tags")
async def replace_tags(server_id: str, nova: NovaRequest) -> dict[str, Any]:
    nova.require("2.26")
    body = await nova.body()
    schemas.validate(schemas.TAGS, body)
    tags = list(dict.fromkeys(body["tags"]))

    def change(record: ServerRecord) -> None:
        record.tags = tags

    _change(nova, server_id, "update tags", change)
    return {"tags": tags}


@router.delete("/tags", status_code=204)
async def delete_tags(server_id: str, nova: NovaRequest) -> Response:
    nova.require("2.26")

    def change(record: ServerRecord) -> None:
        record.tags = []

    _change(nova, server_id, "delete tags", change)
    return Response(status_code=204)


@router.get("/tags/{tag}", status_code=204)
async def check_tag(server_id: str, tag: str, nova: NovaRequest) -> Response:
    nova.require("2.26")
    if tag not in nova.record(server_id).tags:
        raise NovaError(404, f"Server {server_id} has no tag '{tag}'")
    return Response(status_code=204)


@router.put("/tags/{tag}")
async def add_tag(server_id: str, tag: str, nova: NovaRequest) -> Response:
    nova.require("2.26")
    schemas.validate(schemas.TAG_BODY, await nova.body())
    nova.record(server_id)
    try:
        jsonschema.validate(tag, schemas.TAG)
    except jsonschema.ValidationError as error:
        raise NovaError(
            400,
            f"Tag '{tag}' is invalid. It must be a non empty string without characters '/' "
            f"and ','. Validation error message: {error.message}",
        ) from None

    def change(record: ServerRecord) -> bool:
        if tag in record.tags:
            return False
        if len(record.tags) >= schemas.MAX_TAG_COUNT:
            raise NovaError(
                400, f"The number of tags exceeded the per-server limit {schemas.MAX_TAG_COUNT}"
            )
        record.tags.append(tag)
        return True

    if not _change(nova, server_id, "update tag", change):
        return Response(status_code=204)
    location = f"{nova.versioned}/servers/{server_id}/tags/{tag}"
    return Response(status_code=201, headers={"Location": location})


@router.delete("/tags/{tag}", status_code=204)
async def delete_tag(server_id: str, tag: str, nova: NovaRequest) -> Response:
    nova.require("2.26")

    def change(record: ServerRecord) -> None:
        if tag not in record.tags:
            raise NovaError(404, f"Instance {server_id} has no tag '{tag}'")
        record.tags.remove(tag)

    _change(nova, server_id, "delete tag", change)
    return Response(status_code=204)
