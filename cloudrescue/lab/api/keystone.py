"""Keystone v3 under ``/identity``: version discovery and password / token authentication."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from cloudrescue.lab.api.auth import DOMAIN, Identity, Token, keystone_time, unauthorized
from cloudrescue.lab.api.error_bodies import AUTH_REQUIRED, KeystoneError
from cloudrescue.lab.api.service import LabService, lab_of

router = APIRouter(prefix="/identity")

VERSION_ID = "v3.14"
VERSION_UPDATED = "2020-04-07T00:00:00Z"
REGION = "RegionOne"
SUBJECT_HEADER = "X-Subject-Token"


def _version(request: Request) -> dict[str, Any]:
    return {
        "id": VERSION_ID,
        "links": [{"href": f"{str(request.base_url).rstrip('/')}/identity/v3/", "rel": "self"}],
        "media-types": [
            {"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}
        ],
        "status": "stable",
        "updated": VERSION_UPDATED,
    }


@router.get("")
@router.get("/")
async def versions(request: Request) -> JSONResponse:
    return JSONResponse({"versions": {"values": [_version(request)]}}, status_code=300)


@router.get("/v3")
@router.get("/v3/")
async def version(request: Request) -> dict[str, Any]:
    return {"version": _version(request)}


def _bad_request(message: str) -> KeystoneError:
    return KeystoneError(
        400,
        f"{message}. The server could not comply with the request since it is either malformed "
        "or otherwise incorrect. The client is assumed to be in error.",
    )


def _domain_matches(domain: object) -> bool:
    if not isinstance(domain, dict):
        return False
    if "id" in domain:
        return bool(domain["id"] == DOMAIN["id"])
    return bool(domain.get("name") == DOMAIN["name"])


def _check_password(identity: Identity, method: object) -> None:
    if not isinstance(method, dict) or not isinstance(method.get("user"), dict):
        raise _bad_request("Expecting to find user in password")
    user = method["user"]
    password = user.get("password")
    if not isinstance(password, str):
        raise _bad_request("Expecting to find password in user")
    if "id" in user:
        known = user["id"] == identity.user_id
    elif "name" in user:
        if "domain" not in user:
            raise _bad_request("Expecting to find domain in user")
        known = user["name"] == identity.username and _domain_matches(user["domain"])
    else:
        raise _bad_request("Expecting to find id or name in user")
    if not (identity.password_matches(password) and known):
        raise KeystoneError(401, AUTH_REQUIRED)


def _wants_project(identity: Identity, scope: object) -> bool:
    """True for a project scope of the lab's project, False for unscoped; else 401."""
    if scope is None or scope == "unscoped":
        return False
    if not isinstance(scope, dict) or not isinstance(scope.get("project"), dict):
        raise KeystoneError(401, AUTH_REQUIRED)
    project = scope["project"]
    if "id" in project:
        if project["id"] != identity.project_id:
            raise KeystoneError(401, AUTH_REQUIRED)
        return True
    if "domain" not in project:
        raise _bad_request("Expecting to find domain in project")
    if project.get("name") != identity.project_name or not _domain_matches(project["domain"]):
        raise KeystoneError(401, AUTH_REQUIRED)
    return True


def _catalog(lab: LabService) -> list[dict[str, Any]]:
    services = (
        ("identity", "keystone", f"{lab.endpoint}/identity"),
        ("compute", "nova", f"{lab.endpoint}/compute/v2.1"),
        ("image", "glance", f"{lab.endpoint}/image"),
    )
    ident = lab.identity
    return [
        {
            "endpoints": [
                {
                    "region_id": REGION,
                    "url": url,
                    "region": REGION,
                    "interface": interface,
                    "id": f"{name}-{interface}-{ident.project_id[:8]}",
                }
                for interface in ("public", "internal", "admin")
            ],
            "type": kind,
            "id": f"{name}-{ident.project_id[:12]}",
            "name": name,
        }
        for kind, name, url in services
    ]


def _token_body(lab: LabService, token: Token, catalog: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "methods": list(token.methods),
        "expires_at": keystone_time(token.expires_at),
        "user": lab.identity.user(),
        "audit_ids": [token.audit_id],
        "issued_at": keystone_time(token.issued_at),
    }
    if token.scoped:
        body["roles"] = lab.identity.roles()
        body["project"] = lab.identity.project()
        body["is_domain"] = False
        if catalog:
            body["catalog"] = _catalog(lab)
    return {"token": body}


def _token_headers(token: Token) -> dict[str, str]:
    return {SUBJECT_HEADER: token.id, "Vary": "X-Auth-Token"}


async def _json(request: Request) -> Any:
    try:
        return json.loads(await request.body() or b"null")
    except ValueError:
        raise _bad_request("Malformed request body") from None


@router.post("/v3/auth/tokens")
async def issue_token(request: Request) -> JSONResponse:
    lab = lab_of(request)
    body = await _json(request)
    auth = body.get("auth") if isinstance(body, dict) else None
    if not isinstance(auth, dict) or not isinstance(auth.get("identity"), dict):
        raise _bad_request("Expecting to find identity in auth")
    identity_part = auth["identity"]
    methods = identity_part.get("methods")
    if not isinstance(methods, list) or not methods:
        raise _bad_request("Expecting to find methods in identity")
    expires_at = None
    if methods == ["password"]:
        _check_password(lab.identity, identity_part.get("password"))
    elif methods == ["token"]:
        part = identity_part.get("token")
        previous = lab.tokens.get(part.get("id") if isinstance(part, dict) else None)
        if previous is None:
            raise KeystoneError(401, AUTH_REQUIRED)
        expires_at = previous.expires_at
    else:
        raise KeystoneError(401, AUTH_REQUIRED)
    scoped = _wants_project(lab.identity, auth.get("scope"))
    token = lab.tokens.issue(scoped=scoped, methods=tuple(methods), expires_at=expires_at)
    catalog = "nocatalog" not in request.query_params
    return JSONResponse(
        _token_body(lab, token, catalog), status_code=201, headers=_token_headers(token)
    )


def _subject(request: Request) -> tuple[LabService, Token]:
    lab = lab_of(request)
    if lab.tokens.get(request.headers.get("X-Auth-Token")) is None:
        raise unauthorized(request)
    subject_id = request.headers.get(SUBJECT_HEADER, "")
    subject = lab.tokens.get(subject_id)
    if subject is None:
        raise KeystoneError(404, f"Could not find token: {subject_id}.")
    return lab, subject


@router.get("/v3/auth/tokens")
async def validate_token(request: Request) -> JSONResponse:
    lab, subject = _subject(request)
    catalog = "nocatalog" not in request.query_params
    return JSONResponse(_token_body(lab, subject, catalog), headers=_token_headers(subject))


@router.head("/v3/auth/tokens")
async def check_token(request: Request) -> Response:
    _, subject = _subject(request)
    return Response(status_code=200, headers=_token_headers(subject))


@router.delete("/v3/auth/tokens")
async def revoke_token(request: Request) -> Response:
    lab, subject = _subject(request)
    lab.tokens.revoke(subject.id)
    return Response(status_code=204)
