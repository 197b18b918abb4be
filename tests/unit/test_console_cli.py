"""``console url`` / ``console log`` on the command line (issue 11, console): bad input is one
line before the cloud is asked, the record is the documented one in every format, and the
token only ever reaches stdout."""

from __future__ import annotations

import json
import logging

import pytest
import yaml

from cloudrescue.cli.console import _for_people, url_record
from cloudrescue.cli.logs import RedactSecrets, redact
from cloudrescue.cli.output import OutputOptions, show_record
from cloudrescue.cli.records import CONSOLE_URL
from cloudrescue.cloud.console_urls import console_link
from tests.piped import piped, run_main

TOKEN = "b60bcfc3-5fd4-4d21-986c-e83379107819"
NOVA_URL = f"http://example.com:6080/vnc_auto.html?path=%3Ftoken%3D{TOKEN}"




@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ("console url web-1 --type vga", "--type 'vga': not a console type (one of: novnc, "),
        (
            "console url web-1 --type serial --vnc-html",
            "--vnc-html is for a noVNC console, not --type serial",
        ),
        ("console url web-1 -f xml", "--format 'xml': one of table, json, yaml, value, csv"),
        (
            "console url web-1 -c token",
            "no column 'token' here (columns: type, protocol, url, page, cloud_url)",
        ),
        ("console log web-1 --interval 5", "--interval is for --follow"),
        ("console log web-1 --follow --interval 0.1", "'--interval'"),
        ("console log web-1 -F --interval soon", "'--interval'"),
    ],
)
def test_bad_input_is_one_line_before_the_cloud_is_asked(argv: str, message: str) -> None:
    code, out, err = run_main("--os-cloud", "no-such-cloud", *argv.split())
    assert (code, out) == (2, "")
    assert err.startswith("cloudrescue: error: ") and message in err.splitlines()[0]
    assert "no-such-cloud" not in err and "Traceback" not in err




def test_the_record_is_the_documented_one_in_every_format() -> None:
    link = console_link("novnc", NOVA_URL)
    record = url_record(link)
    assert tuple(record) == CONSOLE_URL.names
    one_click = f"http://example.com:6080/vnc_lite.html?path=%3Ftoken%3D{TOKEN}"
    expected = {
        "type": "novnc",
        "protocol": "vnc",
        "url": one_click,
        "page": "vnc_lite.html",
        "cloud_url": NOVA_URL,
    }
    shown: dict[str, str] = {}
    for kind in ("json", "yaml", "value", "csv"):
        env, out, _ = piped()
        show_record(env, OutputOptions(format=kind), record)
        shown[kind] = out.getvalue()
    assert json.loads(shown["json"]) == expected
    assert yaml.safe_load(shown["yaml"]) == expected
    assert shown["value"].splitlines() == list(expected.values())
    env, out, _ = piped()
    show_record(env, OutputOptions(format="value", columns=["url"]), record)
    assert out.getvalue() == one_click + "\n"
    serial = url_record(console_link("serial", f"ws://127.0.0.1:6083/?token={TOKEN}"))
    env, out, _ = piped()
    show_record(env, OutputOptions(format="json"), serial)
    assert json.loads(out.getvalue())["page"] is None


def test_for_people_the_url_alone_on_stdout_what_it_is_on_stderr() -> None:
    env, out, err = piped()
    _for_people(env, console_link("novnc", NOVA_URL), vnc_html=False)
    assert out.getvalue() == f"http://example.com:6080/vnc_lite.html?path=%3Ftoken%3D{TOKEN}\n"
    assert err.getvalue() == ""
    env, out, err = piped()
    _for_people(env, console_link("serial", f"wss://h:6083/?token={TOKEN}"), vnc_html=False)
    assert out.getvalue() == f"wss://h:6083/?token={TOKEN}\n"
    assert "a websocket, not a web page" in err.getvalue() and TOKEN not in err.getvalue()
    env, out, err = piped()
    _for_people(env, console_link("novnc", f"https://h/console?token={TOKEN}"), vnc_html=True)
    assert out.getvalue() == f"https://h/console?token={TOKEN}\n"
    assert "--vnc-html: not a noVNC URL with a token (console): printed as given" in err.getvalue()


@pytest.mark.parametrize(
    "logged",
    [
        # keystoneauth's -vv lines: the answer of remote-consoles, a URL in a request
        '{"remote_console": {"protocol": "vnc", "type": "novnc", "url": "' + NOVA_URL + '"}}',
        f'{{"console": {{"type": "serial", "url": "ws://127.0.0.1:6083/?token={TOKEN}"}}}}',
        f"GET http://example.com:6080/vnc.html?autoconnect=1&path=%3Ftoken%253D{TOKEN}",
        f"path=websockify%3FTOKEN%3D{TOKEN}",
    ],
)
def test_a_console_token_never_reaches_the_logs(logged: str) -> None:
    assert TOKEN not in redact(logged)
    record = logging.LogRecord("keystoneauth.session", logging.DEBUG, "", 0, logged, (), None)
    RedactSecrets().filter(record)
    assert TOKEN not in record.getMessage()
