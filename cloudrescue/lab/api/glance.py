"""Glance v2 under ``/image``: version discovery and the read-only image API."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from cloudrescue.lab.api.auth import unauthorized
from cloudrescue.lab.api.error_bodies import GlanceError
from cloudrescue.lab.api.image_catalog import Image
from cloudrescue.lab.api.service import lab_of

DEFAULT_LIMIT = 25
MAX_LIMIT = 1000
VISIBILITIES = ("public", "private", "shared", "community", "all")
_NOT_FILTERS = frozenset(
    {"limit", "marker", "member_status", "sort", "sort_key", "sort_dir", "tag"}
)
_VERSIONS = (
    ("2.17", "CURRENT"),
    *((f"2.{minor}", "SUPPORTED") for minor in (16, 15, 9, 7, 6, 5, 4, 3, 2, 1, 0)),
)

versions_router = APIRouter(prefix="/image")


async def require_token(request: Request) -> None:
    """keystonemiddleware in front of glance: a valid ``X-Auth-Token`` or 401."""
    if lab_of(request).tokens.get(request.headers.get("X-Auth-Token")) is None:
        raise unauthorized(request)


router = APIRouter(prefix="/image/v2", dependencies=[Depends(require_token)])


def _versions(request: Request) -> dict[str, Any]:
    href = f"{str(request.base_url).rstrip('/')}/image/v2/"
    return {
        "versions": [
            {"id": f"v{version}", "status": status, "links": [{"rel": "self", "href": href}]}
            for version, status in _VERSIONS
        ]
    }


@versions_router.get("")
@versions_router.get("/")
async def versions(request: Request) -> JSONResponse:
    return JSONResponse(_versions(request), status_code=300)


@versions_router.get("/versions")
async def versions_explicit(request: Request) -> dict[str, Any]:
    return _versions(request)


def _limit(value: str | None) -> int:
    if value is None:
        return DEFAULT_LIMIT
    try:
        limit = int(value)
    except ValueError:
        raise GlanceError(400, "limit param must be an integer") from None
    if limit < 0:
        raise GlanceError(400, "limit param must be positive")
    return min(limit, MAX_LIMIT)


def _matches(image: Image, body: dict[str, Any], key: str, value: str) -> bool:
    if key == "id" and value.startswith("in:"):
        return image.id in value[3:].split(",")
    if key == "visibility":
        if value not in VISIBILITIES:
            raise GlanceError(400, f"Invalid visibility value: {value}")
        return value in ("all", body["visibility"])
    if key == "os_hidden":
        return str(body["os_hidden"]).lower() == value.lower()
    return key in body and str(body[key]) == value


@router.get("/images")
async def list_images(request: Request) -> dict[str, Any]:
    lab = lab_of(request)
    params = dict(request.query_params)
    limit = _limit(params.get("limit"))
    filters = {k: v for k, v in params.items() if k not in _NOT_FILTERS}
    filters.setdefault("os_hidden", "false")
    images = [
        image
        for image in lab.images.images
        if all(_matches(image, image.to_glance(), k, v) for k, v in filters.items())
    ]
    marker = params.get("marker")
    if marker is not None:
        ids = [image.id for image in images]
        if marker not in ids:
            raise GlanceError(400, f"Invalid marker. Image {marker} could not be found.")
        images = images[ids.index(marker) + 1 :]
    page = images[:limit]
    query = {k: v for k, v in params.items() if k != "marker"}
    body: dict[str, Any] = {
        "images": [image.to_glance() for image in page],
        "schema": "/v2/schemas/images",
        "first": f"/v2/images?{urlencode(query)}" if query else "/v2/images",
    }
    if page and len(page) == limit:
        body["next"] = f"/v2/images?{urlencode({**query, 'marker': page[-1].id})}"
    return body


@router.get("/images/{image_id}")
async def show_image(image_id: str, request: Request) -> dict[str, Any]:
    image = lab_of(request).images.get(image_id)
    if image is None:
        raise GlanceError(404, f"No image found with ID {image_id}")
    return image.to_glance()
