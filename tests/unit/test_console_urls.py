"""Console URLs in one click (issue 11, console): every shape nova answers with, made a URL
that opens a working session, the token kept exactly; anything else kept or refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cloudrescue.cloud.console_urls import (
    CONSOLE_TYPES,
    PROTOCOLS,
    console_link,
    nova_console_type,
)
from cloudrescue.errors import CloudError, InvalidInputError

SAMPLES = Path(__file__).resolve().parents[1] / "lab/samples/nova/os-remote-consoles"
TOKEN = "daae261f-474d-4cae-8f6a-1865278ed8c9"
PATH = f"path=%3Ftoken%3D{TOKEN}"  # ?token=<token>, percent-encoded: what nova writes
BASE = "https://console.example.net:6080"


def sample_url(name: str) -> str:
    """The URL of one of nova's API samples (``console`` or ``remote_console``)."""
    body = json.loads((SAMPLES / name).read_text())
    return str(next(iter(body.values()))["url"])


@pytest.mark.parametrize(
    ("sample", "console_type", "expected", "page"),
    [
        # nova's novncproxy default: noVNC's old page, gone from noVNC 1.x
        (
            "get-vnc-console-post-resp.json",
            "novnc",
            "http://127.0.0.1:6080/vnc_lite.html?path=%3Ftoken%3Ddaae261f-474d-4cae-8f6a-1865278ed8c9",
            "vnc_lite.html",
        ),
        (
            "v2.6/create-vnc-console-resp.json",
            "novnc",
            "http://example.com:6080/vnc_lite.html?path=%3Ftoken%3Db60bcfc3-5fd4-4d21-986c-e83379107819",
            "vnc_lite.html",
        ),
        # a websocket: nothing to click, printed as it is
        (
            "get-serial-console-post-resp.json",
            "serial",
            "ws://127.0.0.1:6083/?token=f9906a48-b71e-4f18-baca-c987da3ebdb3",
            None,
        ),
        # spice-html5's one-click page already
        (
            "get-spice-console-post-resp.json",
            "spice-html5",
            "http://127.0.0.1:6082/spice_auto.html?token=a30e5d08-6a20-4043-958f-0852440c6af4",
            "spice_auto.html",
        ),
        # not noVNC's: kept
        (
            "get-rdp-console-post-resp.json",
            "rdp-html5",
            "http://127.0.0.1:6083/?token=191996c3-7b0f-42f3-95a7-f1839f2da6ed",
            None,
        ),
        (
            "v2.8/create-mks-console-resp.json",
            "webmks",
            "http://example.com:6090/mks.html?token=b60bcfc3-5fd4-4d21-986c-e83379107819",
            "mks.html",
        ),
    ],
)
def test_nova_api_samples(sample: str, console_type: str, expected: str, page: str) -> None:
    given = sample_url(sample)
    link = console_link(console_type, given)
    assert (link.url, link.page, link.cloud_url) == (expected, page, given)
    assert (link.type, link.protocol) == (console_type, PROTOCOLS[console_type])


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        # vnc_auto.html (noVNC < 1.0, nova's default) -> vnc_lite.html, its path kept
        (f"{BASE}/vnc_auto.html?{PATH}", f"{BASE}/vnc_lite.html?{PATH}"),
        # only a token: noVNC 1.x does not read it, the path must carry it
        (
            f"{BASE}/vnc_auto.html?token={TOKEN}",
            f"{BASE}/vnc_lite.html?{PATH}&token={TOKEN}",
        ),
        # vnc.html waits for a Connect button without autoconnect
        (f"{BASE}/vnc.html?{PATH}", f"{BASE}/vnc.html?autoconnect=1&{PATH}"),
        (
            f"{BASE}/vnc.html?token={TOKEN}",
            f"{BASE}/vnc.html?autoconnect=1&{PATH}&token={TOKEN}",
        ),
        (
            f"{BASE}/vnc.html?autoconnect=0&{PATH}",
            f"{BASE}/vnc.html?autoconnect=1&{PATH}",
        ),
        # behind a prefix, with other parameters and a fragment: all of it kept
        (
            f"{BASE}/novnc/vnc_auto.html?title=web-1&{PATH}&resize=scale#view",
            f"{BASE}/novnc/vnc_lite.html?title=web-1&{PATH}&resize=scale#view",
        ),
        # a path without the token gets it, in the path's own query
        (
            f"{BASE}/vnc_auto.html?path=websockify&token={TOKEN}",
            f"{BASE}/vnc_lite.html?path=websockify%3Ftoken%3D{TOKEN}&token={TOKEN}",
        ),
        (
            f"{BASE}/vnc_auto.html?path=websockify%3Fx%3D1&token={TOKEN}",
            f"{BASE}/vnc_lite.html?path=websockify%3Fx%3D1%26token%3D{TOKEN}&token={TOKEN}",
        ),
        # spice-html5's page with a Connect button -> its one-click page
        (f"{BASE}/spice.html?token={TOKEN}", f"{BASE}/spice_auto.html?token={TOKEN}"),
    ],
)
def test_novnc_and_spice_pages_become_one_click(given: str, expected: str) -> None:
    assert console_link("novnc", given).url == expected


def test_the_token_is_kept_exactly_and_escaped_once_more_in_the_path() -> None:
    """noVNC decodes ``path`` once and opens ``ws://host/<path>``: the proxy must then see the
    token as the cloud wrote it (``%2B`` stays ``%2B``, so it is ``%252B`` in ``path``)."""
    link = console_link("novnc", f"{BASE}/vnc.html?token=a%2Bb%3D")
    assert link.url == f"{BASE}/vnc.html?autoconnect=1&path=%3Ftoken%3Da%252Bb%253D&token=a%2Bb%3D"
    from urllib.parse import parse_qs, unquote, urlsplit

    path = unquote(link.url.split("path=")[1].split("&")[0])  # what noVNC does
    assert parse_qs(urlsplit(f"wss://h/{path}").query)["token"] == ["a+b="]  # the proxy's read


@pytest.mark.parametrize(
    "given",
    [
        f"{BASE}/vnc_lite.html?{PATH}",
        f"{BASE}/vnc.html?autoconnect=1&{PATH}",
        f"{BASE}/vnc.html?autoconnect=true&path=websockify%3Ftoken%3D{TOKEN}",
        f"{BASE}/vnc_lite.html?path=?token={TOKEN}",  # not encoded, and noVNC reads it so
        f"{BASE}/vnc_auto.html",  # no token anywhere: it authenticates some other way
        f"{BASE}/console?token={TOKEN}",  # a cloud's own page (xvpvnc...)
        f"{BASE}/",
        f"wss://console.example.net:6083/?token={TOKEN}",
    ],
)
def test_an_url_already_in_one_click_or_unknown_is_kept_as_it_is(given: str) -> None:
    assert console_link("novnc", given).url == given


def test_vnc_html_asks_for_the_full_page_with_autoconnect() -> None:
    for page in ("vnc_auto.html", "vnc_lite.html", "vnc.html"):
        link = console_link("novnc", f"{BASE}/{page}?{PATH}", vnc_html=True)
        assert (link.url, link.page) == (f"{BASE}/vnc.html?autoconnect=1&{PATH}", "vnc.html")
    kept = console_link("novnc", f"{BASE}/vnc.html?autoconnect=1&{PATH}", vnc_html=True)
    assert kept.url == f"{BASE}/vnc.html?autoconnect=1&{PATH}"


@pytest.mark.parametrize(
    ("given", "reason"),
    [
        ("", "it is empty"),
        ("   ", "it is empty"),
        (f"vnc_auto.html?{PATH}", "it has no scheme"),
        (f"javascript:alert('{TOKEN}')", "its scheme 'javascript' is not http, https, ws or wss"),
        (f"file:///vnc_auto.html?{PATH}", "its scheme 'file' is not"),
        (f"http:///vnc_auto.html?{PATH}", "it names no host"),
        (f"http://host:99999/vnc_auto.html?{PATH}", "it is not a URL"),
        (f"http://[::1/vnc_auto.html?{PATH}", "it is not a URL"),
        (f"http://host/vnc auto.html?{PATH}", "it has spaces or control characters"),
        (f"http://host/vnc_auto.html?{PATH}\x1b[2J", "it has spaces or control characters"),
        (f"http://host/vnc_auto.html?{PATH}\n", "it has spaces or control characters"),
    ],
)
def test_a_garbage_url_is_one_error_that_does_not_repeat_it(given: str, reason: str) -> None:
    with pytest.raises(CloudError) as raised:
        console_link("novnc", given)
    message = raised.value.message
    assert message.startswith(f"the cloud's novnc console URL is not usable: {reason}")
    assert TOKEN not in message and "\n" not in message


def test_console_types_are_novas_with_spice_short_for_spice_html5() -> None:
    assert nova_console_type("spice") == "spice-html5"
    for given in ("novnc", "serial", "xvpvnc", "spice-html5", "rdp-html5", "webmks"):
        assert nova_console_type(given) == given
        assert given in PROTOCOLS
    assert set(CONSOLE_TYPES.values()) == set(PROTOCOLS)
    with pytest.raises(InvalidInputError, match=r"--type 'vga': not a console type \(one of: "):
        nova_console_type("vga")
