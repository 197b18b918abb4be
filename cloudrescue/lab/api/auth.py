"""The lab's one keystone user and project, and the tokens issued to it (kept in memory)."""

from __future__ import annotations

import hmac
import secrets
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import Request

from cloudrescue.lab.api.error_bodies import AUTH_REQUIRED, KeystoneError

TOKEN_LIFETIME = timedelta(hours=1)
_NAMESPACE = uuid.UUID("0d8c3a52-69b4-4f7e-8f27-3a8a3e5d0c11")
DOMAIN = {"id": "default", "name": "Default"}
ROLE_NAMES = ("member", "reader")


def _hex_id(lab_id: str, key: str) -> str:
    return uuid.uuid5(_NAMESPACE, f"{lab_id}/{key}").hex


def keystone_time(moment: datetime) -> str:
    """``2015-11-07T02:58:43.578887Z`` as keystone writes token times."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Identity:
    """The user, project and roles of one lab (``credentials.json``)."""

    lab_id: str
    username: str
    password: str = field(repr=False)
    project_name: str

    @property
    def user_id(self) -> str:
        return _hex_id(self.lab_id, f"user/{self.username}")

    @property
    def project_id(self) -> str:
        return _hex_id(self.lab_id, f"project/{self.project_name}")

    def roles(self) -> list[dict[str, str]]:
        return [{"id": _hex_id(self.lab_id, f"role/{name}"), "name": name} for name in ROLE_NAMES]

    def user(self) -> dict[str, Any]:
        return {
            "domain": dict(DOMAIN),
            "id": self.user_id,
            "name": self.username,
            "password_expires_at": None,
        }

    def project(self) -> dict[str, Any]:
        return {"domain": dict(DOMAIN), "id": self.project_id, "name": self.project_name}

    def password_matches(self, password: str) -> bool:
        return hmac.compare_digest(password.encode(), self.password.encode())


@dataclass(frozen=True)
class Token:
    """An issued token; ``scoped`` tokens carry the project and the catalog."""

    id: str = field(repr=False)
    scoped: bool
    methods: tuple[str, ...]
    issued_at: datetime
    expires_at: datetime
    audit_id: str

    @property
    def expired(self) -> bool:
        return datetime.now(UTC) >= self.expires_at


class TokenStore:
    """Random tokens with an expiry, valid until the daemon stops."""

    def __init__(self) -> None:
        self._tokens: dict[str, Token] = {}
        self._lock = threading.Lock()

    def issue(
        self, *, scoped: bool, methods: tuple[str, ...], expires_at: datetime | None = None
    ) -> Token:
        now = datetime.now(UTC)
        token = Token(
            id=secrets.token_hex(32),
            scoped=scoped,
            methods=methods,
            issued_at=now,
            expires_at=expires_at or now + TOKEN_LIFETIME,
            audit_id=secrets.token_urlsafe(16)[:22],
        )
        with self._lock:
            self._tokens = {key: t for key, t in self._tokens.items() if not t.expired}
            self._tokens[token.id] = token
        return token

    def get(self, token_id: str | None) -> Token | None:
        if not token_id:
            return None
        with self._lock:
            token = self._tokens.get(token_id)
        return None if token is None or token.expired else token

    def revoke(self, token_id: str) -> None:
        with self._lock:
            self._tokens.pop(token_id, None)


def unauthorized(request: Request) -> KeystoneError:
    """keystonemiddleware's 401, pointing the client at keystone."""
    identity_url = f"{str(request.base_url).rstrip('/')}/identity"
    return KeystoneError(401, AUTH_REQUIRED, {"WWW-Authenticate": f'Keystone uri="{identity_url}"'})
