"""Nova v2.1 under ``/compute``: version documents, servers, flavors, keypairs, zones."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request

from cloudrescue.lab.api import schemas
from cloudrescue.lab.api.error_bodies import NovaError
from cloudrescue.lab.api.microversion import MAX_VERSION, MIN_VERSION
from cloudrescue.lab.api.nova_common import Nova, NovaRequest
from cloudrescue.lab.api.store import ServerRecord, states_for_statuses
from cloudrescue.lab.api.views import (
    AVAILABILITY_ZONE,
    FLAVORS,
    find_flavor,
    flavor_view,
    server_basic,
    server_detail,
)

MAX_LIMIT = 1000
VERSION_UPDATED = "2013-07-23T11:33:21Z"

versions_router = APIRouter(prefix="/compute")
router = APIRouter(prefix="/compute/v2.1")


def _v21(request: Request, *, media_types: bool) -> dict[str, Any]:
    base = f"{str(request.base_url).rstrip('/')}/compute/v2.1/"
    version: dict[str, Any] = {
        "id": "v2.1",
        "links": [{"href": base, "rel": "self"}],
        "status": "CURRENT",
        "version": str(MAX_VERSION),
        "min_version": str(MIN_VERSION),
        "updated": VERSION_UPDATED,
    }
    if media_types:
        version["links"].append(
            {"href": "http://docs.openstack.org/", "rel": "describedby", "type": "text/html"}
        )
        version["media-types"] = [
            {
                "base": "application/json",
                "type": "application/vnd.openstack.compute+json;version=2.1",
            }
        ]
    return version


@versions_router.get("")
@versions_router.get("/")
async def versions(request: Request) -> dict[str, Any]:
    return {"versions": [_v21(request, media_types=False)]}


@versions_router.get("/v2.1")
@versions_router.get("/v2.1/")
async def version(request: Request) -> dict[str, Any]:
    return {"version": _v21(request, media_types=True)}


def _query(nova: Nova) -> dict[str, list[str]]:
    query: dict[str, list[str]] = {}
    for key, value in nova.request.query_params.multi_items():
        query.setdefault(key, []).append(value)
    return query


def _limit(nova: Nova, query: dict[str, list[str]]) -> int:
    """The page size: ``limit``, at most nova's ``max_limit`` (the ``max_limit`` fault)."""
    most = nova.lab.faults.max_limit or MAX_LIMIT
    values = query.get("limit")
    return min(int(values[-1]), most) if values else most


def _page(
    nova: Nova,
    every: list[ServerRecord],
    items: list[ServerRecord],
    query: dict[str, list[str]],
    collection: str,
) -> tuple[list[ServerRecord], list[dict[str, str]]]:
    """Apply ``marker`` and ``limit`` to ``items`` (the filtered part of ``every``, in order);
    the ``next`` link when the page is full.

    As nova, the marker is any server of the project, not only one the filters keep: the page
    starts after its place in the sort order (one that left the filtered set since the last
    page, e.g. by changing status, still marks the place)."""
    marker = query.get("marker", [None])[-1]
    if marker is not None:
        place = {record.id: index for index, record in enumerate(every)}
        if marker not in place:
            raise NovaError(400, f"marker [{marker}] not found")
        items = [item for item in items if place[item.id] > place[marker]]
    limit = _limit(nova, query)
    items = items[:limit]
    if not limit or len(items) != limit:
        return items, []
    params = [(k, v) for k, values in query.items() if k != "marker" for v in values]
    params.append(("marker", items[-1].id))
    href = f"{nova.versioned}/{collection}?{urlencode(params)}"
    return items, [{"href": href, "rel": "next"}]


def _tag_filter(record: ServerRecord, name: str, value: str) -> bool:
    wanted = {tag for tag in value.split(",") if tag}
    tags = set(record.tags)
    if name == "tags":
        return wanted <= tags
    if name == "tags-any":
        return bool(wanted & tags)
    if name == "not-tags":
        return not wanted <= tags
    return not wanted & tags


def _filtered(
    nova: Nova, records: list[ServerRecord], query: dict[str, list[str]]
) -> list[ServerRecord]:
    """Nova's list filters a project member may use; others are ignored as nova ignores them."""
    if "status" in query:
        vm_states, task_states, any_default = states_for_statuses(query["status"])
        if not vm_states:
            if nova.at_least("2.38"):
                raise NovaError(400, "Invalid status value")
            return []
        records = [
            r
            for r in records
            if r.vm_state in vm_states and (any_default or r.task_state in task_states)
        ]
    if "name" in query:
        # Nova matches with the database's REGEXP, which MySQL applies case-insensitively.
        pattern = re.compile(query["name"][-1], re.IGNORECASE)
        records = [r for r in records if pattern.search(r.spec.name)]
    if "ip" in query:
        address = re.compile(query["ip"][-1])
        records = [r for r in records if address.search(r.spec.address)]
    if "image" in query:
        records = [
            r for r in records if not r.spec.volume_backed and r.image_id == query["image"][-1]
        ]
    if "flavor" in query:
        records = [r for r in records if r.flavor_id == query["flavor"][-1]]
    if nova.at_least("2.26"):
        for name in schemas.TAG_FILTERS:
            if name in query:
                value = query[name][-1]
                records = [r for r in records if _tag_filter(r, name, value)]
    return records


def _list(nova: Nova, *, detail: bool) -> dict[str, Any]:
    query = _query(nova)
    schema = schemas.server_list_query(
        tags=nova.at_least("2.26"),
        changes_before=nova.at_least("2.66"),
        locked=nova.at_least("2.73"),
        strict=nova.at_least("2.75"),
    )
    schemas.validate(schema, query, query=True)
    collection = "servers/detail" if detail else "servers"
    every = nova.lab.store.all()
    records, links = _page(nova, every, _filtered(nova, every, query), query, collection)
    view = server_detail if detail else server_basic
    body: dict[str, Any] = {"servers": [view(nova, record) for record in records]}
    if links:
        body["servers_links"] = links
    return body


@router.get("/servers")
async def list_servers(nova: NovaRequest) -> dict[str, Any]:
    return _list(nova, detail=False)


@router.get("/servers/detail")
async def list_servers_detail(nova: NovaRequest) -> dict[str, Any]:
    return _list(nova, detail=True)


@router.get("/servers/{server_id}")
async def show_server(server_id: str, nova: NovaRequest) -> dict[str, Any]:
    return {"server": server_detail(nova, nova.record(server_id), show=True)}


@router.get("/flavors")
async def list_flavors(nova: NovaRequest) -> dict[str, Any]:
    if nova.at_least("2.75"):
        schemas.validate(schemas.FLAVOR_QUERY_STRICT, _query(nova), query=True)
    return {"flavors": [flavor_view(nova, flavor, detail=False) for flavor in FLAVORS]}


@router.get("/flavors/detail")
async def list_flavors_detail(nova: NovaRequest) -> dict[str, Any]:
    if nova.at_least("2.75"):
        schemas.validate(schemas.FLAVOR_QUERY_STRICT, _query(nova), query=True)
    return {"flavors": [flavor_view(nova, flavor, detail=True) for flavor in FLAVORS]}


@router.get("/flavors/{flavor_id}")
async def show_flavor(flavor_id: str, nova: NovaRequest) -> dict[str, Any]:
    flavor = find_flavor(flavor_id)
    if flavor is None:
        raise NovaError(404, f"Flavor {flavor_id} could not be found.")
    return {"flavor": flavor_view(nova, flavor, detail=True)}


@router.get("/os-keypairs")
async def list_keypairs(nova: NovaRequest) -> dict[str, Any]:
    return {"keypairs": []}


@router.get("/os-availability-zone")
async def list_availability_zones(nova: NovaRequest) -> dict[str, Any]:
    return {
        "availabilityZoneInfo": [
            {"zoneName": AVAILABILITY_ZONE, "zoneState": {"available": True}, "hosts": None}
        ]
    }
