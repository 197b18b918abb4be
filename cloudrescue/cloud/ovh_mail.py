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
as a whole word (``vps-1`` is not ``vps-12``), and it has a password line, or, in its other
form, a link to a one-time secret page instead of the password::

    Pour des raisons de sécurité, votre mot de passe n'est pas envoyé par e-mail. Il est
    consultable une seule fois à l'adresse suivante :
    https://www.ovh.com/secret-service/?token=...

The link is the first ``http(s)://`` URL on a line that names the password (``mot de passe``,
``password``, ``secret``) or on the line after it; the page it leads to is read with
``page_password`` (whether to open it at all is the backend's decision: ``ovh_vps.py``).
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
_ANCHOR = re.compile(r"""<\s*a\b[^>]*\bhref\s*=\s*["']([^"'<>]*)["'][^>]*>""", re.IGNORECASE)
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u00a0": " "})
_LINK = re.compile(r"https?://[^\s<>\"']+", re.IGNORECASE)
_NAMES_PASSWORD = re.compile(r"mot de passe|password|secret", re.IGNORECASE)


@dataclass(frozen=True)
class RescueCredentials:
    """What a rescue e-mail gives: where to log in, as whom, with which password."""

    address: str | None
    user: str
    password: str | None = field(repr=False)  # None: the e-mail gives ``link`` instead
    link: str | None = field(default=None, repr=False)  # the one-time secret page's URL


def plain_text(body: str) -> str:
    """``body`` without HTML: line breaks kept, a link's target kept in its place, tags
    dropped, entities decoded."""
    text = _TAG.sub("", _ANCHOR.sub(r" \1 ", _BREAK.sub("\n", body)))
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
    if password is not None and _LINK.fullmatch(password):
        password = None  # "Mot de passe : https://...": the link to the secret page
    link = None if password is not None else secret_link(text)
    if password is None and link is None:
        return None
    return RescueCredentials(
        address=_field(text, ADDRESS_LABELS),
        user=_field(text, USER_LABELS) or DEFAULT_USER,
        password=password,
        link=link,
    )


def secret_link(text: str) -> str | None:
    """The URL of the secret page that holds the password: the first link on a line that
    names the password, or on the line after one."""
    lines = text.splitlines()
    for number, line in enumerate(lines):
        if not _NAMES_PASSWORD.search(line):
            continue
        for candidate in lines[number : number + 2]:
            found = _LINK.search(candidate)
            if found:
                return found.group(0).rstrip(".,;)")
    return None


def page_password(page: str) -> str | None:
    """The password a one-time secret page shows (its ``Mot de passe :`` / ``Password:``
    line, once its HTML is dropped); None when it shows none."""
    return _field(plain_text(page), PASSWORD_LABELS)
