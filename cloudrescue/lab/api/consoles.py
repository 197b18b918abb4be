"""Console URLs as nova's proxies give them (noVNC, SPICE, serial): tokens, and the page behind
them (the console log: no VNC or SPICE server here, and nothing answers the serial websocket)."""

from __future__ import annotations

import html
import threading
import time
import uuid
from collections.abc import Callable
from urllib.parse import parse_qs, quote, urlsplit, urlunsplit

CONSOLE_TOKEN_TTL = 600.0
# The pages behind the URLs (noVNC's old and new one-click pages, its full page, SPICE's).
PAGES = ("/vnc_auto.html", "/vnc_lite.html", "/vnc.html", "/spice_auto.html")


class ConsoleTokens:
    """Console tokens, each valid for ten minutes (nova's ``consoleauth.token_ttl``)."""

    def __init__(self, ttl: float = CONSOLE_TOKEN_TTL) -> None:
        self._ttl = ttl
        self._tokens: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def issue(self, server_id: str) -> str:
        token = str(uuid.uuid4())
        now = time.monotonic()
        with self._lock:
            self._tokens = {k: v for k, v in self._tokens.items() if v[1] > now}
            self._tokens[token] = (server_id, now + self._ttl)
        return token

    def resolve(self, token: str | None) -> str | None:
        """The server a valid token opens, else None."""
        if not token:
            return None
        with self._lock:
            entry = self._tokens.get(token)
        if entry is None or entry[1] <= time.monotonic():
            return None
        return entry[0]


def novnc_url(base_url: str, token: str) -> str:
    """``http://host:port/vnc_auto.html?path=%3Ftoken%3D<token>`` as nova's novncproxy gives."""
    return f"{base_url.rstrip('/')}/vnc_auto.html?path={quote(f'?token={token}', safe='')}"


def spice_url(base_url: str, token: str) -> str:
    """``http://host:port/spice_auto.html?token=<token>`` as nova's spicehtml5proxy gives."""
    return f"{base_url.rstrip('/')}/spice_auto.html?token={token}"


def serial_url(base_url: str, token: str) -> str:
    """``ws://host:port/?token=<token>`` (``wss://`` behind https) as nova's serialproxy
    gives."""
    parts = urlsplit(base_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return urlunsplit((scheme, parts.netloc, "/", f"token={token}", ""))


# remote-consoles ``protocol`` -> the one console type the lab has for it, and its URL.
CONSOLE_TYPES = {"vnc": "novnc", "spice": "spice-html5", "serial": "serial"}
CONSOLE_URLS: dict[str, Callable[[str, str], str]] = {
    "vnc": novnc_url,
    "spice": spice_url,
    "serial": serial_url,
}


def token_from_query(path: str | None, token: str | None) -> str | None:
    """The token of ``?path=%3Ftoken%3D...`` or of a plain ``?token=...``."""
    if token:
        return token
    if path:
        values = parse_qs(path.lstrip("?")).get("token")
        if values:
            return values[0]
    return None


def console_page(name: str, server_id: str, status: str, log: str) -> str:
    """A small page with the console log of an instance."""
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="refresh" content="5">
<title>Console of {html.escape(name)}</title>
<style>
body {{ font-family: sans-serif; margin: 1em; }}
pre {{ background: #111; color: #ddd; padding: 1em; overflow: auto; }}
</style>
</head>
<body>
<h1>Console of {html.escape(name)}</h1>
<p>Instance {html.escape(server_id)}, status {html.escape(status)}.</p>
<p>This lab has no VNC server: this page shows the instance's console log instead
(it reloads every five seconds).</p>
<pre>{html.escape(log)}</pre>
</body>
</html>
"""


def invalid_token_page() -> str:
    return """<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Console</title></head>
<body><h1>Console</h1><p>The console token is invalid or has expired.</p></body>
</html>
"""
