"""What every authenticated compute request needs: token, microversion, links, body, record."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from cloudrescue.lab.api.auth import unauthorized
from cloudrescue.lab.api.error_bodies import NOT_FOUND, NovaError, instance_not_found
from cloudrescue.lab.api.microversion import Version, requested_version
from cloudrescue.lab.api.service import LabService, lab_of
from cloudrescue.lab.api.store import ServerRecord


@dataclass(frozen=True)
class Nova:
    """One authenticated compute request: the lab, the microversion, the URLs to link to."""

    lab: LabService
    version: Version
    request: Request

    def at_least(self, version: str) -> bool:
        return self.version.at_least(version)

    def require(self, version: str) -> None:
        """404 below ``version``, as nova answers a method its microversion lacks."""
        if not self.at_least(version):
            raise NovaError(404, NOT_FOUND)

    @property
    def root(self) -> str:
        """``http://host:port/compute``: where bookmark links point."""
        return f"{str(self.request.base_url).rstrip('/')}/compute"

    @property
    def versioned(self) -> str:
        return f"{self.root}/v2.1"

    def links(self, collection: str, item_id: str) -> list[dict[str, str]]:
        return [
            {"href": f"{self.versioned}/{collection}/{item_id}", "rel": "self"},
            {"href": f"{self.root}/{collection}/{item_id}", "rel": "bookmark"},
        ]

    def bookmark(self, collection: str, item_id: str) -> list[dict[str, str]]:
        return [{"href": f"{self.root}/{collection}/{item_id}", "rel": "bookmark"}]

    def record(self, server_id: str) -> ServerRecord:
        """The server, or nova's 404."""
        record = self.lab.store.get(server_id)
        if record is None:
            raise instance_not_found(server_id)
        return record

    async def body(self) -> Any:
        """The JSON body (None when empty), or nova's 400 for a body that is not JSON."""
        raw = await self.request.body()
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise NovaError(400, "Malformed request body") from None


async def nova_context(request: Request) -> Nova:
    """Authenticate (keystonemiddleware's 401 first), then read the microversion."""
    lab = lab_of(request)
    token = lab.tokens.get(request.headers.get("X-Auth-Token"))
    if token is None:
        raise unauthorized(request)
    version = requested_version(request.headers)
    request.state.microversion = version
    if not token.scoped:
        raise NovaError(403, "Policy doesn't allow this request with an unscoped token.")
    return Nova(lab, version, request)


NovaRequest = Annotated[Nova, Depends(nova_context)]
