"""``cloudrescue ovh login``: a consumer key limited to what the ``ovh-vps`` backend calls,
and where it goes (an ovh.conf, 0600, as python-ovh reads it).

OVHcloud's API signs each request with an application key and secret (made once at
``https://<region>.api.ovh.com/createApp/``) and a *consumer key*, which ``POST
/auth/credential`` makes with access rules and which works once its owner has opened the
validation URL, logged in and accepted them. The rules asked for here are the backend's calls
and no more: ``GET /vps`` and ``/vps/*``, ``PUT`` and ``POST /vps/*`` (netboot, reboot,
consoles), ``GET /me/notification/email/history`` and ``.../*`` (the rescue e-mails).

The consumer key is a credential: it is written into the ovh.conf the user names (only its
``consumer_key`` line is changed or added, under the endpoint's section; the file is
replaced atomically, mode 0600) or printed when asked for; never put in argv or a log.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from cloudrescue.cloud.ovh_vps import OvhSettings, api_errors
from cloudrescue.errors import CloudError, InvalidInputError

ACCESS_RULES: tuple[tuple[str, str], ...] = (
    ("GET", "/vps"),
    ("GET", "/vps/*"),
    ("PUT", "/vps/*"),
    ("POST", "/vps/*"),
    ("GET", "/me/notification/email/history"),
    ("GET", "/me/notification/email/history/*"),
)
CREATE_APP_HINT = (
    "an application key and secret come from https://eu.api.ovh.com/createApp/ (ca.api.ovh.com "
    "for ovh-ca...): put them in the ovh.conf (application_key, application_secret) or in "
    "OVH_APPLICATION_KEY / OVH_APPLICATION_SECRET"
)
_SECTION = re.compile(r"^\s*\[(?P<name>[^\]]+)\]\s*$")
_CONSUMER_KEY = re.compile(r"^\s*consumer_key\s*[=:]", re.IGNORECASE)
_CONSUMER_KEY_TEXT = re.compile(r"[A-Za-z0-9]{8,128}")


@dataclass(frozen=True)
class CredentialRequest:
    """``POST /auth/credential``'s answer: the new consumer key (not valid until its
    validation URL is opened) and that URL."""

    consumer_key: str = field(repr=False)
    validation_url: str
    state: str


def access_rules() -> list[dict[str, str]]:
    """The rules of the consumer key, as ``POST /auth/credential`` takes them."""
    return [{"method": method, "path": path} for method, path in ACCESS_RULES]


def request_consumer_key(settings: OvhSettings) -> CredentialRequest:
    """Ask the endpoint for a consumer key with ``ACCESS_RULES`` (signed with the
    application key only: no consumer key is needed for this call)."""
    client = settings.client()
    if not client._application_key:
        raise InvalidInputError(
            f"no OVH application key is configured for {settings.endpoint}", hint=CREATE_APP_HINT
        )
    with api_errors("consumer key request"):
        answer = client.request_consumerkey(access_rules())
    key = answer.get("consumerKey") if isinstance(answer, dict) else None
    url = answer.get("validationUrl") if isinstance(answer, dict) else None
    if not isinstance(key, str) or not _CONSUMER_KEY_TEXT.fullmatch(key):
        raise CloudError("consumer key request: the OVH API answered no consumer key")
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        raise CloudError("consumer key request: the OVH API answered no validation URL")
    state = answer.get("state")
    return CredentialRequest(key, url, state if isinstance(state, str) else "pendingValidation")


def with_consumer_key(text: str, endpoint: str, consumer_key: str) -> str:
    """``text`` (an ovh.conf) with ``consumer_key`` set under ``[endpoint]``: that line
    replaced, or added at the end of the section, or the section added (and a ``[default]``
    naming the endpoint when the file has none); every other line kept as it is."""
    lines = text.splitlines()
    line = f"consumer_key = {consumer_key}"
    sections = [(number, found["name"].strip()) for number, raw in enumerate(lines)
                if (found := _SECTION.match(raw))]  # fmt: skip
    starts = [number for number, name in sections if name == endpoint]
    if starts:
        start = starts[-1]
        ends = [number for number, _ in sections if number > start]
        end = ends[0] if ends else len(lines)
        for number in range(start + 1, end):
            if _CONSUMER_KEY.match(lines[number]):
                lines[number] = line
                break
        else:
            last = max((n for n in range(start, end) if lines[n].strip()), default=start)
            lines.insert(last + 1, line)
    else:
        if not any(name == "default" for _, name in sections):
            lines += [*([""] if lines else []), "[default]", f"endpoint = {endpoint}"]
        lines += [*([""] if lines else []), f"[{endpoint}]", line]
    return "\n".join(lines) + "\n"


def checked_target(path: Path) -> Path:
    """The ovh.conf ``path`` may be written (links resolved): a regular file that is an
    ovh.conf, or a new file in a directory that exists (checked before the API is asked)."""
    target = path.expanduser().resolve()
    if target.exists() and not target.is_file():
        raise InvalidInputError(f"--write {path}: not a regular file")
    if not target.parent.is_dir():
        raise InvalidInputError(f"--write {path}: no such directory {target.parent}")
    old = _read(path, target)
    if old and not any(_SECTION.match(raw) for raw in old.splitlines()):
        raise InvalidInputError(f"--write {path}: not an ovh.conf (no [section] in it)")
    return target


def _read(path: Path, target: Path) -> str:
    try:
        return target.read_text(encoding="utf-8") if target.exists() else ""
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidInputError(f"--write {path}: cannot read it ({error})") from None


def write_consumer_key(path: Path, endpoint: str, consumer_key: str) -> Path:
    """Set ``consumer_key`` in the ovh.conf ``path`` (made if absent): the file is replaced
    atomically by one of mode 0600 (it holds credentials). The path written (links resolved)."""
    if not endpoint.strip() or any(c in endpoint for c in "[]\r\n"):
        raise InvalidInputError(f"OVH API endpoint {endpoint!r}: not an ovh.conf section name")
    target = checked_target(path)
    old = _read(path, target)
    fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:  # mkstemp makes it 0600
            handle.write(with_consumer_key(old, endpoint, consumer_key))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target
