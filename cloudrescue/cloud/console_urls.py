"""Remote console URLs that open a working session in one click.

Nova answers ``remote-consoles`` (or the older ``os-get*Console`` actions) with the URL its
console proxy is configured with, e.g.::

    novnc        http://host:6080/vnc_auto.html?path=%3Ftoken%3D<token>
    serial       ws://host:6083/?token=<token>
    spice-html5  http://host:6082/spice_auto.html?token=<token>

noVNC 1.x no longer has ``vnc_auto.html`` (its one-click page is ``vnc_lite.html``), and its
full ``vnc.html`` page waits for a Connect button unless given ``autoconnect=1``. Both read the
websocket to open from the ``path`` query parameter (default ``websockify``): the console
proxy finds the session by the ``token`` in that websocket's own query, so ``path`` must carry
it (``path=%3Ftoken%3D<token>`` is ``?token=<token>``, percent-encoded once more).

``console_link`` makes nova's URL a one-click one, and changes nothing else:

- ``vnc_auto.html`` becomes ``vnc_lite.html`` (``vnc.html?autoconnect=1`` when asked);
  ``vnc_lite.html`` stays (``vnc.html`` when asked); ``vnc.html`` gets ``autoconnect=1``. When
  only ``token=`` is given, ``path`` is added so that it carries the token; a ``path`` without
  a token gets the token appended. Every other query parameter, the token itself, the host and
  the fragment are kept exactly as nova wrote them.
- spice-html5's ``spice.html`` (with a Connect button) becomes ``spice_auto.html``.
- Any other URL is kept as it is: a ``ws://`` serial console (a websocket client opens it),
  another page (a cloud's own console page), a noVNC URL with no token at all (it may
  authenticate some other way), one already in one click.

A URL that is not one (empty, with spaces or control characters, not http, https, ws or wss,
no host) is refused with a one-line ``CloudError``: the cloud's answer is unusable. The error
never repeats the URL (its token is a credential; only stdout shows it).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, quote, unquote, unquote_plus, urlsplit, urlunsplit

from cloudrescue.errors import CloudError, InvalidInputError

# What ``console url --type`` accepts, and nova's console type for each.
CONSOLE_TYPES: dict[str, str] = {
    "novnc": "novnc",
    "serial": "serial",
    "spice": "spice-html5",
    "spice-html5": "spice-html5",
    "xvpvnc": "xvpvnc",
    "rdp-html5": "rdp-html5",
    "webmks": "webmks",
}
# nova's console type -> the remote console protocol (nova's remote-consoles ``protocol``).
PROTOCOLS: dict[str, str] = {
    "novnc": "vnc",
    "xvpvnc": "vnc",
    "spice-html5": "spice",
    "serial": "serial",
    "rdp-html5": "rdp",
    "webmks": "mks",
}
NOVNC_PAGES = ("vnc_auto.html", "vnc_lite.html", "vnc.html")
NOVNC_ONE_CLICK = "vnc_lite.html"
NOVNC_FULL = "vnc.html"
SPICE_PAGES = {"spice.html": "spice_auto.html"}
SCHEMES = ("http", "https", "ws", "wss")
_YES = ("1", "true")  # what noVNC's vnc.html takes as autoconnect on


@dataclass(frozen=True)
class ConsoleLink:
    """A remote console, ready to open."""

    type: str  # nova's console type (``novnc``, ``serial``, ``spice-html5``...)
    protocol: str  # ``vnc``, ``serial``, ``spice``, ``rdp``, ``mks``
    url: str  # what to open: one click for a web page
    page: str | None  # the web page ``url`` opens; None for a websocket (``ws://``)
    cloud_url: str  # the URL as the cloud answered


def nova_console_type(given: str) -> str:
    """Nova's console type for a ``--type`` value (``spice`` is ``spice-html5``);
    ``InvalidInputError`` for one nova does not have."""
    try:
        return CONSOLE_TYPES[given]
    except KeyError:
        raise InvalidInputError(
            f"--type {given!r}: not a console type (one of: {', '.join(CONSOLE_TYPES)})"
        ) from None


def console_link(console_type: str, cloud_url: str, *, vnc_html: bool = False) -> ConsoleLink:
    """The one-click form of ``cloud_url``, nova's URL of a ``console_type`` console (nova's
    type); ``vnc_html`` asks for noVNC's full ``vnc.html`` page rather than ``vnc_lite.html``.
    ``CloudError`` when ``cloud_url`` is not a URL."""
    parts = _checked(console_type, cloud_url)
    page = _page(parts.scheme, parts.path)
    url = cloud_url
    if page in NOVNC_PAGES:
        url, page = _novnc(cloud_url, page, vnc_html=vnc_html)
    elif page in SPICE_PAGES:
        url, page = _with_page(parts, page, SPICE_PAGES[page], parts.query), SPICE_PAGES[page]
    protocol = PROTOCOLS.get(console_type, console_type)
    return ConsoleLink(console_type, protocol, url, page, cloud_url)


def _checked(console_type: str, url: str) -> _Parts:
    """``url`` split, or why it is not a URL one can open."""

    def refuse(reason: str) -> CloudError:
        return CloudError(f"the cloud's {console_type} console URL is not usable: {reason}")

    if not url.strip():
        raise refuse("it is empty")
    if not url.isprintable() or any(char.isspace() for char in url):
        raise refuse("it has spaces or control characters")
    try:
        split = urlsplit(url)
        split.port  # noqa: B018 - urlsplit checks the port only when asked
    except ValueError:
        raise refuse("it is not a URL") from None
    if not split.scheme:
        raise refuse("it has no scheme (http, https, ws or wss)")
    if split.scheme.lower() not in SCHEMES:
        raise refuse(f"its scheme {split.scheme!r} is not http, https, ws or wss")
    if not split.hostname:
        raise refuse("it names no host")
    return _Parts(split.scheme, split.netloc, split.path, split.query, split.fragment)


@dataclass(frozen=True)
class _Parts:
    scheme: str
    netloc: str
    path: str
    query: str
    fragment: str


def _page(scheme: str, path: str) -> str | None:
    """The web page a URL opens (its last path segment), None for a websocket."""
    if scheme.lower() in ("ws", "wss"):
        return None
    return path.rsplit("/", 1)[-1] or None


def _with_page(parts: _Parts, page: str, new_page: str, query: str) -> str:
    path = parts.path[: len(parts.path) - len(page)] + new_page
    return urlunsplit((parts.scheme, parts.netloc, path, query, parts.fragment))


def _named(item: str, name: str) -> bool:
    """Whether a query item is ``name=...``, as noVNC matches it (``[?&]name=``, not
    decoded)."""
    return item.startswith(f"{name}=")


def _value(item: str) -> str:
    """A query item's value, as written (percent-encoded)."""
    return item.partition("=")[2]


def _carries_token(path: str) -> bool:
    """Whether a websocket path (decoded) has a ``token`` in its own query."""
    return "token" in parse_qs(path.partition("?")[2], keep_blank_values=True)


def _with_token(path: str, token: str) -> str:
    """``path`` with ``token=<token>`` added to its query (``token`` as written in the URL)."""
    if "?" not in path:
        return f"{path}?token={token}"
    return f"{path}{'' if path.endswith(('?', '&')) else '&'}token={token}"


def _novnc(url: str, page: str, *, vnc_html: bool) -> tuple[str, str]:
    """A noVNC URL (``page`` one of ``NOVNC_PAGES``) in one click: the URL and its page."""
    parts = urlsplit(url)
    items = [item for item in parts.query.split("&") if item]
    tokens = [_value(item) for item in items if _named(item, "token")]
    paths = [index for index, item in enumerate(items) if _named(item, "path")]
    token = tokens[-1] if tokens else None
    added: list[str] = []
    if paths:
        index = paths[-1]  # noVNC reads the last one
        path = unquote(_value(items[index]))  # noVNC decodes it as decodeURIComponent does
        if not _carries_token(path):
            if token is None:
                return url, page  # no token anywhere: it authenticates some other way
            items[index] = "path=" + quote(_with_token(path, token), safe="")
    elif token is not None:
        added.append("path=" + quote(_with_token("", token), safe=""))
    else:
        return url, page
    target = NOVNC_FULL if vnc_html or page == NOVNC_FULL else NOVNC_ONE_CLICK
    if target == NOVNC_FULL:
        switches = [unquote_plus(_value(item)) for item in items if _named(item, "autoconnect")]
        if not switches or switches[-1].lower() not in _YES:
            items = [item for item in items if not _named(item, "autoconnect")]
            added.insert(0, "autoconnect=1")
    query = "&".join([*added, *items])
    if target == page and query == parts.query:
        return url, page
    split = _Parts(parts.scheme, parts.netloc, parts.path, parts.query, parts.fragment)
    return _with_page(split, page, target, query), target
