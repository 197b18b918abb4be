"""Status codes, error bodies, microversions and transitions of the lab's API, over raw HTTP."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from .api_harness import SAMPLES, ApiLab, shared_lab

pytestmark = pytest.mark.lab
AUTH_REQUIRED = "The request you have made requires authentication."


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiLab]:
    yield from shared_lab(tmp_path_factory)


def server_id(lab: ApiLab, name: str) -> str:
    return str(lab.server(name)["id"])


def action(lab: ApiLab, sid: str, body: object, version: str | None = None) -> requests.Response:
    return lab.compute("POST", f"/servers/{sid}/action", json=body, version=version)


def wait_task_state(lab: ApiLab, sid: str, task_state: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        server = lab.server(sid)
        if server["OS-EXT-STS:task_state"] == task_state:
            return server
        time.sleep(0.05)
    raise AssertionError(f"task_state {task_state} never seen")


def test_keystone_discovery_and_tokens(lab: ApiLab) -> None:
    versions = requests.get(f"{lab.endpoint}/identity/", timeout=10)
    assert versions.status_code == 300
    assert versions.json()["versions"]["values"][0]["id"].startswith("v3.")
    assert requests.get(f"{lab.endpoint}/identity/v3", timeout=10).json()["version"]["status"] == (
        "stable"
    )
    issued = lab.password_auth()
    assert issued.status_code == 201
    token = issued.headers["X-Subject-Token"]
    body = issued.json()["token"]
    assert body["project"]["name"] == lab.credentials["project_name"]
    assert body["user"]["name"] == lab.credentials["username"]
    assert {role["name"] for role in body["roles"]} == {"member", "reader"}
    compute = next(entry for entry in body["catalog"] if entry["type"] == "compute")
    assert {e["interface"] for e in compute["endpoints"]} == {"public", "internal", "admin"}
    assert {e["url"] for e in compute["endpoints"]} == {f"{lab.endpoint}/compute/v2.1"}
    assert all(e["region_id"] == "RegionOne" for e in compute["endpoints"])
    unscoped = lab.password_auth(scoped=False).json()["token"]
    assert "catalog" not in unscoped and "project" not in unscoped

    headers = {"X-Auth-Token": lab.token(), "X-Subject-Token": token}
    url = f"{lab.endpoint}/identity/v3/auth/tokens"
    assert requests.get(url, headers=headers, timeout=10).status_code == 200
    assert requests.delete(url, headers=headers, timeout=10).status_code == 204
    gone = requests.get(url, headers=headers, timeout=10)
    assert gone.status_code == 404 and gone.json()["error"]["title"] == "Not Found"
    assert lab.compute("GET", "/servers", token=token).status_code == 401


def test_bad_credentials_and_missing_tokens_are_401(lab: ApiLab) -> None:
    refused = lab.password_auth(password="wrong")
    assert refused.status_code == 401
    assert refused.json() == {
        "error": {"code": 401, "message": AUTH_REQUIRED, "title": "Unauthorized"}
    }
    assert "X-Subject-Token" not in refused.headers
    for url in (f"{lab.endpoint}/compute/v2.1/servers", f"{lab.endpoint}/image/v2/images"):
        for headers in ({}, {"X-Auth-Token": "not-a-token"}):
            answer = requests.get(url, headers=headers, timeout=10)
            assert answer.status_code == 401
            assert answer.json()["error"]["message"] == AUTH_REQUIRED
            assert answer.headers["WWW-Authenticate"].startswith("Keystone uri=")


def test_unknown_server_is_404(lab: ApiLab) -> None:
    missing = "3a1f2e7c-0000-4000-8000-00000000beef"
    answer = lab.compute("GET", f"/servers/{missing}")
    assert answer.status_code == 404
    assert answer.json() == {
        "itemNotFound": {"code": 404, "message": f"Instance {missing} could not be found."}
    }
    assert action(lab, missing, {"unrescue": None}).status_code == 404


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"rescue": {"adminPass": 5}},
            "Invalid input for field/attribute adminPass. Value: 5. 5 is not of type 'string'",
        ),
        (
            {"rescue": {"rescue_image_ref": "not-a-uuid"}},
            "Invalid input for field/attribute rescue_image_ref. Value: not-a-uuid. "
            "'not-a-uuid' is not a 'uuid'",
        ),
        (
            {"rescue": {"password": "x"}},
            "Invalid input for field/attribute rescue. Value: {'password': 'x'}. "
            "Additional properties are not allowed ('password' was unexpected)",
        ),
        ({"frobnicate": None}, "There is no such action: frobnicate"),
        ({"os-start": None, "os-stop": None}, "Malformed request body"),
        (
            {"reboot": {"type": "WARM"}},
            "Invalid input for field/attribute type. Value: WARM. "
            "'WARM' is not one of ['HARD', 'Hard', 'hard', 'SOFT', 'Soft', 'soft']",
        ),
        (
            {"os-getConsoleOutput": {"length": "-2"}},
            "Invalid input for field/attribute length. Value: -2. -2 is less than the minimum "
            "of -1",
        ),
    ],
)
def test_schema_violations_are_400(lab: ApiLab, body: object, message: str) -> None:
    answer = action(lab, server_id(lab, "lab-1"), body)
    assert answer.status_code == 400
    assert answer.json() == {"badRequest": {"code": 400, "message": message}}


def test_metadata_and_tag_validation(lab: ApiLab) -> None:
    sid = server_id(lab, "lab-1")
    bad_key = lab.compute("PUT", f"/servers/{sid}/metadata", json={"metadata": {"a/b": "x"}})
    assert bad_key.status_code == 400
    mismatch = lab.compute("PUT", f"/servers/{sid}/metadata/k", json={"meta": {"j": "v"}})
    assert mismatch.json()["badRequest"]["message"] == "Request body and URI mismatch"
    assert lab.compute("GET", f"/servers/{sid}/tags", version="2.25").status_code == 404
    bad_tag = lab.compute("PUT", f"/servers/{sid}/tags/a,b", version="2.26")
    assert bad_tag.status_code == 400
    assert bad_tag.json()["badRequest"]["message"].startswith("Tag 'a,b' is invalid.")
    added = lab.compute("PUT", f"/servers/{sid}/tags/ok", version="2.26")
    assert added.status_code == 201 and added.headers["Location"].endswith(f"/{sid}/tags/ok")
    assert lab.compute("PUT", f"/servers/{sid}/tags/ok", version="2.26").status_code == 204
    assert lab.compute("GET", f"/servers/{sid}/tags/ok", version="2.26").status_code == 204
    assert lab.compute("DELETE", f"/servers/{sid}/tags/ok", version="2.26").status_code == 204
    gone = lab.compute("DELETE", f"/servers/{sid}/tags/ok", version="2.26")
    assert gone.json()["itemNotFound"]["message"] == f"Instance {sid} has no tag 'ok'"


def test_microversion_negotiation(lab: ApiLab) -> None:
    sid = server_id(lab, "lab-1")
    too_new = lab.compute("GET", f"/servers/{sid}", version="2.101")
    assert too_new.status_code == 406
    assert too_new.json()["computeFault"]["message"] == (
        "Version 2.101 is not supported by the API. Minimum is 2.1 and maximum is 2.100."
    )
    garbled = lab.compute("GET", f"/servers/{sid}", version="2.x")
    assert garbled.status_code == 400
    latest = lab.compute("GET", f"/servers/{sid}", version="latest")
    assert latest.headers["OpenStack-API-Version"] == "compute 2.100"
    assert latest.headers["X-OpenStack-Nova-API-Version"] == "2.100"
    assert "OpenStack-API-Version" in latest.headers["Vary"]
    legacy = lab.compute("GET", f"/servers/{sid}", headers={"X-OpenStack-Nova-API-Version": "2.26"})
    assert legacy.headers["OpenStack-API-Version"] == "compute 2.26"
    assert "tags" in legacy.json()["server"]
    plain = lab.compute("GET", f"/servers/{sid}").json()["server"]
    assert "tags" not in plain and "description" not in plain and "locked" not in plain
    assert set(plain["flavor"]) == {"id", "links"}
    versions = requests.get(f"{lab.endpoint}/compute/", timeout=10).json()["versions"]
    assert versions[0]["version"] == "2.100" and versions[0]["min_version"] == "2.1"


@pytest.mark.parametrize(
    ("sample", "version", "path", "key"),
    [
        ("servers/v2.100/server-get-resp.json", "2.100", "/servers/{id}", "server"),
        ("servers/v2.96/server-get-resp.json", "2.96", "/servers/{id}", "server"),
        ("servers/v2.100/servers-details-resp.json", "2.100", "/servers/detail", "servers"),
        ("servers/v2.96/servers-details-resp.json", "2.96", "/servers/detail", "servers"),
        ("servers/v2.100/servers-list-resp.json", "2.100", "/servers", "servers"),
        (
            "os-server-tags/v2.26/server-tags-show-details-resp.json",
            "2.26",
            "/servers/{id}",
            "server",
        ),
        ("os-rescue/server-get-resp-unrescue.json", "2.1", "/servers/{id}", "server"),
        ("os-rescue/v2.87/server-get-resp-unrescue.json", "2.87", "/servers/{id}", "server"),
        ("flavors/v2.75/flavor-get-resp.json", "2.75", "/flavors/1", "flavor"),
    ],
)
def test_bodies_have_the_fields_of_the_upstream_samples(
    lab: ApiLab, sample: str, version: str, path: str, key: str
) -> None:
    expected = json.loads((SAMPLES / "nova" / sample).read_text())[key]
    answer = lab.compute(
        "GET", path.format(id=server_id(lab, "lab-1")), version=version, params={"name": "^lab-1$"}
    )
    got = answer.json()[key]
    if isinstance(expected, list):
        expected, got = expected[0], got[0]
    assert set(got) == set(expected)
    if "flavor" in expected:
        assert set(got["flavor"]) == set(expected["flavor"])
    if isinstance(expected.get("image"), dict):
        assert set(got["image"]) == set(expected["image"])


def test_rescue_state_machine(lab: ApiLab) -> None:
    sid = server_id(lab, "lab-1")
    refused = action(lab, sid, {"unrescue": None})
    assert refused.status_code == 409
    assert refused.json() == {
        "conflictingRequest": {
            "code": 409,
            "message": f"Cannot 'unrescue' instance {sid} while it is in vm_state active",
        }
    }
    started = action(lab, sid, {"rescue": None})
    assert started.status_code == 200 and len(started.json()["adminPass"]) >= 8
    during = lab.server(sid)
    assert during["status"] == "ACTIVE" and during["OS-EXT-STS:task_state"] == "rescuing"
    busy = action(lab, sid, {"rescue": {}})
    assert busy.json()["conflictingRequest"]["message"] == (
        f"Cannot 'rescue' instance {sid} while it is in task_state rescuing"
    )
    rescued = lab.wait_for(sid, "RESCUE")
    assert rescued["OS-EXT-STS:vm_state"] == "rescued" and rescued["OS-EXT-STS:power_state"] == 1
    assert "progress" not in rescued
    again = action(lab, sid, {"rescue": {"adminPass": "x"}})
    assert again.json()["conflictingRequest"]["message"] == (
        f"Cannot 'rescue' instance {sid} while it is in vm_state rescued"
    )
    stop = action(lab, sid, {"os-stop": None})
    assert stop.status_code == 409
    metadata = lab.compute("POST", f"/servers/{sid}/metadata", json={"metadata": {"k": "v"}})
    assert metadata.json()["conflictingRequest"]["message"] == (
        f"Cannot 'update metadata' instance {sid} while it is in vm_state rescued"
    )
    assert action(lab, sid, {"unrescue": None}).status_code == 202
    assert wait_task_state(lab, sid, "unrescuing")["status"] == "RESCUE"
    lab.wait_for(sid, "ACTIVE")


def test_stop_start_reboot(lab: ApiLab) -> None:
    sid = server_id(lab, "lab-2")
    assert action(lab, sid, {"os-stop": None}).status_code == 202
    assert lab.server(sid)["OS-EXT-STS:task_state"] == "powering-off"
    stopped = lab.wait_for(sid, "SHUTOFF")
    assert stopped["OS-EXT-STS:power_state"] == 4 and stopped["OS-EXT-STS:vm_state"] == "stopped"
    soft = action(lab, sid, {"reboot": {"type": "SOFT"}})
    assert soft.json()["conflictingRequest"]["message"] == (
        f"Cannot 'reboot' instance {sid} while it is in vm_state stopped"
    )
    assert action(lab, sid, {"os-start": None}).status_code == 202
    lab.wait_for(sid, "ACTIVE")
    assert action(lab, sid, {"reboot": {"type": "soft"}}).status_code == 202
    assert lab.server(sid)["status"] == "REBOOT"
    lab.wait_for(sid, "ACTIVE")
    assert action(lab, sid, {"reboot": {"type": "HARD"}}).status_code == 202
    assert lab.server(sid)["status"] == "HARD_REBOOT"
    lab.wait_for(sid, "ACTIVE")


def test_volume_backed_rescue_rules(lab: ApiLab) -> None:
    added = lab.admin("POST", "/instances", json={"name": "lab-bfv", "volume_backed": True})
    assert added.status_code == 201, added.text
    sid = added.json()["instance"]["id"]
    try:
        server = lab.server(sid)
        assert server["image"] == ""
        (volume,) = server["os-extended-volumes:volumes_attached"]
        assert volume == {
            "id": added.json()["instance"]["volume_id"],
            "delete_on_termination": False,
        }
        images = {
            image["name"]: image["id"]
            for image in requests.get(
                f"{lab.endpoint}/image/v2/images",
                headers={"X-Auth-Token": lab.token()},
                timeout=10,
            ).json()["images"]
        }
        refusal = f"Instance {sid} cannot be rescued: Cannot rescue a volume-backed instance"
        for version, image in (
            (None, images["cloudrescue-rescue"]),
            ("2.86", images["cloudrescue-rescue"]),
            ("2.87", images["cloudrescue-rescue-legacy"]),
            ("2.87", None),
        ):
            body = {"rescue": {"rescue_image_ref": image} if image else None}
            refused = action(lab, sid, body, version=version)
            assert refused.status_code == 400, (version, image)
            assert refused.json()["badRequest"]["message"] == refusal
        accepted = action(
            lab,
            sid,
            {
                "rescue": {
                    "adminPass": "bfv-Rescue-1",
                    "rescue_image_ref": images["cloudrescue-rescue"],
                }
            },
            version="2.87",
        )
        assert accepted.status_code == 200 and accepted.json() == {"adminPass": "bfv-Rescue-1"}
        lab.wait_for(sid, "RESCUE")
        assert action(lab, sid, {"unrescue": None}).status_code == 202
        lab.wait_for(sid, "ACTIVE")
    finally:
        assert lab.admin("DELETE", f"/instances/{sid}").status_code == 204
    assert lab.compute("GET", f"/servers/{sid}").status_code == 404


def test_list_paging_and_status_filter(lab: ApiLab) -> None:
    first = lab.compute("GET", "/servers", params={"limit": 1}).json()
    assert len(first["servers"]) == 1
    (link,) = first["servers_links"]
    assert link["rel"] == "next" and f"marker={first['servers'][0]['id']}" in link["href"]
    rest = requests.get(link["href"], headers={"X-Auth-Token": lab.token()}, timeout=10).json()
    assert first["servers"][0]["id"] not in {s["id"] for s in rest["servers"]}
    bad_marker = lab.compute("GET", "/servers", params={"marker": "nope"})
    assert bad_marker.json()["badRequest"]["message"] == "marker [nope] not found"
    bad_status = lab.compute("GET", "/servers", params={"status": "SLEEPY"}, version="2.38")
    assert bad_status.json()["badRequest"]["message"] == "Invalid status value"
    unknown = lab.compute("GET", "/servers", params={"colour": "red"}, version="2.75")
    assert unknown.json()["badRequest"]["message"] == (
        "Additional properties are not allowed ('colour' was unexpected)"
    )
    bad_regex = lab.compute("GET", "/servers", params={"name": "("})
    assert bad_regex.status_code == 400


def test_glance(lab: ApiLab) -> None:
    assert requests.get(f"{lab.endpoint}/image/", timeout=10).status_code == 300
    headers = {"X-Auth-Token": lab.token()}
    url = f"{lab.endpoint}/image/v2/images"
    rescue = requests.get(url, params={"name": "cloudrescue-rescue"}, headers=headers, timeout=10)
    (image,) = rescue.json()["images"]
    assert image["hw_rescue_device"] == "disk" and image["hw_rescue_bus"] == "virtio"
    shown = requests.get(f"{url}/{image['id']}", headers=headers, timeout=10).json()
    assert shown == image
    page = requests.get(url, params={"limit": 1}, headers=headers, timeout=10).json()
    assert len(page["images"]) == 1 and "marker=" in page["next"]
    missing = requests.get(f"{url}/{'0' * 32}", headers=headers, timeout=10)
    assert missing.status_code == 404 and missing.json()["title"] == "Not Found"


def test_console_types(lab: ApiLab) -> None:
    sid = server_id(lab, "lab-1")
    legacy = action(lab, sid, {"os-getVNCConsole": {"type": "novnc"}})
    assert legacy.status_code == 200 and legacy.json()["console"]["type"] == "novnc"
    assert "no VNC server" in requests.get(legacy.json()["console"]["url"], timeout=10).text
    assert action(lab, sid, {"os-getVNCConsole": {"type": "novnc"}}, "2.6").status_code == 404
    url = f"/servers/{sid}/remote-consoles"
    vnc = {"remote_console": {"protocol": "vnc", "type": "novnc"}}
    assert lab.compute("POST", url, json=vnc, version="2.5").status_code == 404
    for protocol, kind, shape in (  # as nova's API samples (os-remote-consoles)
        ("vnc", "novnc", r"http://127\.0\.0\.1:\d+/vnc_auto\.html\?path=%3Ftoken%3D[0-9a-f-]{36}"),
        ("serial", "serial", r"ws://127\.0\.0\.1:\d+/\?token=[0-9a-f-]{36}"),
        ("spice", "spice-html5", r"http://127\.0\.0\.1:\d+/spice_auto\.html\?token=[0-9a-f-]{36}"),
    ):
        body = {"remote_console": {"protocol": protocol, "type": kind}}
        answer = lab.compute("POST", url, json=body, version="2.6")
        assert answer.status_code == 200, answer.text
        given = answer.json()["remote_console"]
        assert (given["protocol"], given["type"]) == (protocol, kind)
        assert re.fullmatch(shape, given["url"]), given["url"]
    spice_page = requests.get(given["url"], timeout=10)
    assert spice_page.status_code == 200 and "no VNC server" in spice_page.text
    for protocol, kind, status, message in (
        ("rdp", "rdp-html5", 400, "Unavailable console type rdp."),
        ("vnc", "xvpvnc", 400, "Invalid console type xvpvnc"),
        ("serial", "novnc", 400, "Invalid console type novnc"),
        ("mks", "webmks", 501, "The requested functionality is not supported."),
    ):
        body = {"remote_console": {"protocol": protocol, "type": kind}}
        answer = lab.compute("POST", url, json=body, version="2.8")
        assert answer.status_code == status
        assert next(iter(answer.json().values()))["message"] == message
