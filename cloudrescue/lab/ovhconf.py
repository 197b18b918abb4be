"""The lab's OVHcloud API account: its keys, and ``<state-dir>/ovh.conf`` in python-ovh's INI
format (``[default] endpoint=<url>`` and the keys under ``[<url>]``), which both ``lab up``
writes and the daemon reads.

The endpoint is the lab's URL (``http://127.0.0.1:<port>/ovh/1.0``): python-ovh knows only
its fixed endpoint names, and cloudrescue adds a URL endpoint to ``ovh.client.ENDPOINTS``
under that same name (``cloudrescue/cloud/ovh_vps.py``).
"""

from __future__ import annotations

import configparser
import io
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

OVH_PREFIX = "/ovh/1.0"
# Requests a second cloudrescue sends the lab's OVH API (``api_rate`` in ovh.conf): OVHcloud's
# fair use is one, the lab has no such limit and its tests are in a hurry.
LAB_API_RATE = 20


@dataclass(frozen=True)
class OvhAccount:
    """The application key and secret and the consumer key the lab's OVH API accepts."""

    application_key: str
    application_secret: str = field(repr=False)
    consumer_key: str = field(repr=False)

    @classmethod
    def generate(cls) -> OvhAccount:
        return cls(secrets.token_hex(8), secrets.token_hex(16), secrets.token_hex(16))


def endpoint_url(api_port: int) -> str:
    """The lab's OVH API root, as python-ovh's endpoints end (``.../1.0``)."""
    return f"http://127.0.0.1:{api_port}{OVH_PREFIX}"


def write(path: Path, account: OvhAccount, endpoint: str) -> None:
    """``path`` (0600): ``[default] endpoint`` and the account's keys under ``[endpoint]``."""
    parser = configparser.RawConfigParser()
    parser["default"] = {"endpoint": endpoint}
    parser[endpoint] = {
        "application_key": account.application_key,
        "application_secret": account.application_secret,
        "consumer_key": account.consumer_key,
        "api_rate": str(LAB_API_RATE),
    }
    text = io.StringIO()
    parser.write(text)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text.getvalue())


def read(path: Path) -> OvhAccount:
    """The account ``write`` stored in ``path``."""
    parser = configparser.RawConfigParser()
    parser.read_string(path.read_text())
    keys = parser[parser["default"]["endpoint"]]
    return OvhAccount(keys["application_key"], keys["application_secret"], keys["consumer_key"])


def read_consumer_key(path: Path, endpoint: str) -> str:
    """The ``consumer_key`` under ``[endpoint]`` of the ovh.conf ``path``."""
    parser = configparser.RawConfigParser()
    parser.read_string(path.read_text())
    return parser[endpoint]["consumer_key"]
