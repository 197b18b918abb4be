"""python-openstackclient, run as a subprocess, against the lab's API."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from .api_harness import ApiLab, shared_lab

pytestmark = pytest.mark.lab
OPENSTACK = shutil.which("openstack") or str(Path(sys.executable).with_name("openstack"))


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiLab]:
    yield from shared_lab(tmp_path_factory)


def openstack(lab: ApiLab, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [OPENSTACK, *args], env=lab.env(), capture_output=True, text=True, timeout=120
    )
    if check and result.returncode != 0:
        raise AssertionError(f"openstack {' '.join(args)} failed:\n{result.stderr}")
    return result


def openstack_json(lab: ApiLab, *args: str) -> Any:
    return json.loads(openstack(lab, *args, "-f", "json").stdout)


def test_server_list_and_show(lab: ApiLab) -> None:
    listed = {row["Name"]: row for row in openstack_json(lab, "server", "list")}
    assert {"lab-1", "lab-2"} <= set(listed)
    assert listed["lab-1"]["Status"] == "ACTIVE"
    assert listed["lab-1"]["Image"] == "Debian 12 (lab)"
    assert listed["lab-1"]["Flavor"] == "lab.small"
    shown = openstack_json(lab, "server", "show", "lab-1")
    assert shown["id"] == listed["lab-1"]["ID"]
    assert shown["OS-EXT-STS:vm_state"] == "active"
    assert shown["OS-EXT-SRV-ATTR:hostname"] == "lab-1"


def test_rescue_console_and_unrescue(lab: ApiLab) -> None:
    openstack(lab, "server", "rescue", "--password", "osc-Rescue-1", "lab-2")
    assert lab.wait_for("lab-2", "RESCUE")["OS-EXT-STS:vm_state"] == "rescued"
    again = openstack(lab, "server", "rescue", "lab-2", check=False)
    assert again.returncode != 0 and "while it is in vm_state rescued" in again.stderr
    log = openstack(lab, "console", "log", "show", "--lines", "5", "lab-2").stdout
    assert log.strip() and len(log.strip().splitlines()) <= 5
    url = openstack_json(lab, "console", "url", "show", "--novnc", "lab-2")
    assert url["type"] == "novnc" and url["protocol"] == "vnc"
    assert "no VNC server" in requests.get(url["url"], timeout=30).text
    openstack(lab, "server", "unrescue", "lab-2")
    lab.wait_for("lab-2", "ACTIVE")
    refused = openstack(lab, "server", "unrescue", "lab-2", check=False)
    assert refused.returncode != 0 and "while it is in vm_state active" in refused.stderr


def test_image_list(lab: ApiLab) -> None:
    names = {row["Name"] for row in openstack_json(lab, "image", "list")}
    assert {"Debian 12 (lab)", "cloudrescue-rescue", "cloudrescue-rescue-legacy"} <= names
    shown = openstack_json(lab, "image", "show", "cloudrescue-rescue")
    assert shown["properties"]["hw_rescue_device"] == "disk"
    assert shown["properties"]["hw_rescue_bus"] == "virtio"
