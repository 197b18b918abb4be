"""The service e-mail OVHcloud sends when a VPS has rebooted into rescue mode: which e-mail is
about which VPS, and the SSH credentials it carries.

OVHcloud words it (French, its oldest and most common form; the English one has the same
fields)::

    Objet : Redémarrage en mode rescue de votre VPS vps-1a2b3c4d.vps.ovh.net

    Votre VPS vps-1a2b3c4d.vps.ovh.net vient d'être redémarré en mode rescue.
    ...
    Adresse IP du VPS : 203.0.113.10
    Nom d'utilisateur : root
    Mot de passe : Xy7kP2qLm9

The body may be HTML (``<br />`` between the lines): tags are dropped first. An e-mail counts
as a rescue e-mail for a VPS only when its subject or body says ``rescue`` and names that VPS
as a whole word (``vps-1`` is not ``vps-12``), and it has a password line.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field

ADDRESS_LABELS = ("Adresse IP du VPS", "Adresse IP", "IP address", "IPv4")
USER_LABELS = ("Nom d'utilisateur", "Identifiant", "Username", "User name", "Login")
PASSWORD_LABELS = ("Mot de passe", "Password")
DEFAULT_USER = "root"

_RESCUE = re.compile(r"\brescue\b", re.IGNORECASE)
_BREAK = re.compile(r"<\s*(br|/p|/div|/tr|/li)\b[^>]*>", re.IGNORECASE)
_TAG = re.compile(r"<[^>]*>")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u00a0": " "})


@dataclass(frozen=True)
class RescueCredentials:
    """What a rescue e-mail gives: where to log in, as whom, with which password."""

    address: str | None
    user: str
    password: str = field(repr=False)


def plain_text(body: str) -> str:
    """``body`` without HTML: line breaks kept, tags dropped, entities decoded."""
    text = _TAG.sub("", _BREAK.sub("\n", body))
    return html.unescape(text).translate(_APOSTROPHES)


def names_service(text: str, service: str) -> bool:
    """Whether ``text`` names the VPS ``service`` as a whole word (not as part of another
    service's name: ``vps-1`` is not in ``vps-12`` nor in ``vps-1.other.net``)."""
    pattern = rf"(?<![\w.-]){re.escape(service)}(?![\w-]|\.[\w-])"
    return re.search(pattern, text, re.IGNORECASE) is not None


def _field(text: str, labels: tuple[str, ...]) -> str | None:
    for label in labels:
        found = re.search(
            rf"^[ \t*-]*{re.escape(label)}[ \t]*:[ \t]*(\S+)[ \t]*$",
            text,
            re.IGNORECASE | re.MULTILINE,
        )
        if found:
            return found.group(1)
    return None


def rescue_credentials(service: str, subject: str, body: str) -> RescueCredentials | None:
    """The credentials of the rescue e-mail about VPS ``service``; None when the e-mail is
    something else (another VPS, another subject, no password)."""
    subject_text = plain_text(subject)
    text = plain_text(body)
    both = f"{subject_text}\n{text}"
    if not _RESCUE.search(both) or not names_service(both, service):
        return None
    password = _field(text, PASSWORD_LABELS)
    if password is None:
        return None
    return RescueCredentials(
        address=_field(text, ADDRESS_LABELS),
        user=_field(text, USER_LABELS) or DEFAULT_USER,
        password=password,
    )
