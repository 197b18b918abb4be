"""Unmodified openstacksdk against the lab's API, over real HTTP (clouds.yaml from the lab)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from typing import Any

import openstack
import pytest
import requests

from cloudrescue.cloud.openstack import OpenStackCloud

from .api_harness import CLOUD, ApiLab, console_host_keys, rescue_ssh, shared_lab

pytestmark = pytest.mark.lab


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiLab]:
    yield from shared_lab(tmp_path_factory)


@pytest.fixture()
def conn(lab: ApiLab, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(lab.clouds_yaml))
    return openstack.connect(cloud=CLOUD)


def test_servers_listed_and_fetched(lab: ApiLab, conn: Any) -> None:
    servers = sorted(conn.compute.servers(details=True), key=lambda s: s.name)
    assert [s.name for s in servers][:2] == ["lab-1", "lab-2"]
    subnet = ipaddress.ip_network(lab.config.subnet)
    first = servers[0]
    assert first.status == "ACTIVE"
    (address,) = first.addresses["lab-net"]
    assert address["addr"] == str(subnet.network_address + 10)
    assert address["OS-EXT-IPS-MAC:mac_addr"].startswith("fa:16:3e:")
    again = conn.compute.get_server(first.id)
    assert again.name == "lab-1" and again.flavor.original_name == "lab.small"
    assert conn.compute.find_server("lab-2").id == servers[1].id
    assert conn.compute.get_endpoint_data().max_microversion == (2, 100)


def test_list_filters(conn: Any) -> None:
    def names(**query: Any) -> list[str]:
        return sorted(s.name for s in conn.compute.servers(**query))

    assert names(name="^lab-[12]$") == ["lab-1", "lab-2"]
    assert names(name="LAB-1$") == ["lab-1"]
    assert "lab-1" in names(status="ACTIVE")
    assert names(status="RESCUE", name="^lab-[12]$") == []
    server = conn.compute.find_server("lab-2")
    server.set_tags(conn.compute, ["blue", "sdk-filter"])
    try:
        assert names(tags="sdk-filter") == ["lab-2"]
        assert names(tags="blue,sdk-filter") == ["lab-2"]
        assert names(any_tags="nothing,sdk-filter") == ["lab-2"]
        assert "lab-2" not in names(not_tags="sdk-filter")
    finally:
        conn.compute.remove_tags_from_server(server)


def test_metadata_round_trip(conn: Any) -> None:
    server = conn.compute.find_server("lab-1")
    conn.compute.set_server_metadata(server, colour="green", owner="tests")
    assert conn.compute.get_server_metadata(server).metadata == {
        "colour": "green",
        "owner": "tests",
    }
    conn.compute.delete_server_metadata(server, ["colour"])
    assert conn.compute.get_server_metadata(server).metadata == {"owner": "tests"}
    conn.compute.delete_server_metadata(server, ["owner"])
    assert conn.compute.get_server(server.id).metadata == {}


def test_tags_round_trip(conn: Any) -> None:
    server = conn.compute.find_server("lab-1")
    conn.compute.add_tag_to_server(server, "alpha")
    conn.compute.add_tag_to_server(server, "beta")
    assert sorted(conn.compute.get_server(server.id).tags) == ["alpha", "beta"]
    server.check_tag(conn.compute, "beta")
    conn.compute.remove_tag_from_server(server, "alpha")
    assert server.fetch_tags(conn.compute).tags == ["beta"]
    conn.compute.remove_tags_from_server(server)
    assert conn.compute.get_server(server.id).tags == []


def test_rescue_console_and_unrescue(lab: ApiLab, conn: Any) -> None:
    server = conn.compute.find_server("lab-1")
    rescue_image = conn.image.find_image("cloudrescue-rescue")
    conn.compute.rescue_server(server, admin_pass="sdk-Rescue-1", image_ref=rescue_image.id)
    rescued = conn.compute.wait_for_server(server, status="RESCUE", interval=0.5, wait=300)
    assert rescued.vm_state == "rescued" and rescued.power_state == 1
    tail = conn.compute.get_server_console_output(server, length=20)["output"]
    assert tail and len(tail.splitlines()) <= 20
    address = rescued.addresses["lab-net"][0]["addr"]
    keys = lab.rescue_host_keys(server.id)  # printed a while after RESCUE, as on a cloud
    console = conn.compute.get_server_console_output(server)["output"]
    assert console_host_keys(console) == keys
    assert rescue_ssh(address, "sdk-Rescue-1", keys, "echo rescued") == "rescued\n"
    conn.compute.unrescue_server(server)
    back = conn.compute.wait_for_server(server, status="ACTIVE", interval=0.5, wait=300)
    assert back.task_state is None and back.vm_state == "active"


def test_remote_console_page(conn: Any) -> None:
    server = conn.compute.find_server("lab-2")
    console = conn.compute.create_console(server, console_type="novnc")
    url = console["url"]
    assert re.fullmatch(
        r"http://127\.0\.0\.1:\d+/vnc_auto\.html\?path=%3Ftoken%3D[0-9a-f-]{36}", url
    )
    page = requests.get(url, timeout=30)
    assert page.status_code == 200
    assert "no VNC server" in page.text and "lab-2" in page.text
    bad = requests.get(url.replace("path=%3Ftoken%3D", "path=%3Ftoken%3Dx"), timeout=30)
    assert bad.status_code == 404


def test_cloudrescue_backend_talks_to_the_lab(lab: ApiLab, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(lab.clouds_yaml))
    cloud = OpenStackCloud(CLOUD)
    server = cloud.find_server("lab-2")
    assert server.status == "ACTIVE"
    assert ipaddress.ip_address(server.addresses[0].ip) in ipaddress.ip_network(lab.config.subnet)
    assert cloud.max_compute_microversion() == "2.100"
    assert cloud.find_image("cloudrescue-rescue").supports_stable_device_rescue
    assert not cloud.find_image("cloudrescue-rescue-legacy").supports_stable_device_rescue
    assert cloud.console_output(server.id, length=5)
