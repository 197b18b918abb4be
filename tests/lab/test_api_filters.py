"""Tags and metadata given at creation (``POST /lab/v1/instances``), and nova's list filters
and paging on the lab: ``tags``, ``tags-any``, ``not-tags``, ``not-tags-any`` (2.26), ``status``,
``name``, ``limit`` / ``marker`` and ``max_limit``; unknown keys ignored as nova ignores them
(strict from 2.75). Then ``OpenStackCloud.list_servers`` through openstacksdk on the same."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from cloudrescue.cloud.openstack import OpenStackCloud

from .api_harness import CLOUD, ApiLab, shared_lab

pytestmark = pytest.mark.lab
PREFIX = f"flt{uuid.uuid4().hex[:6]}"  # this module's instances, whatever else the lab holds
# name -> (tags, metadata)
FLEET: dict[str, tuple[list[str], dict[str, str]]] = {
    f"{PREFIX}-a": (["red", "blue"], {"role": "web"}),
    f"{PREFIX}-b": (["red"], {"role": "db"}),
    f"{PREFIX}-c": ([], {}),
}


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiLab]:
    yield from shared_lab(tmp_path_factory)


@pytest.fixture(scope="module")
def fleet(lab: ApiLab) -> Iterator[dict[str, dict[str, Any]]]:
    """This module's three instances (admin views by name), booted in parallel."""

    def add(name: str) -> dict[str, Any]:
        tags, metadata = FLEET[name]
        answer = lab.admin(
            "POST", "/instances", json={"name": name, "tags": tags, "metadata": metadata}
        )
        assert answer.status_code == 201, answer.text
        view: dict[str, Any] = answer.json()["instance"]
        return view

    with ThreadPoolExecutor(len(FLEET)) as pool:
        views = dict(zip(FLEET, pool.map(add, FLEET), strict=True))
    try:
        yield views
    finally:
        lab.admin("DELETE", "/faults")
        for view in views.values():
            lab.admin("DELETE", f"/instances/{view['id']}")


def listed(lab: ApiLab, version: str = "2.100", **params: Any) -> list[str]:
    """Names of this module's servers ``GET /servers`` lists with ``params``."""
    answer = lab.compute(
        "GET", "/servers", params={"name": f"^{PREFIX}-", **params}, version=version
    )
    assert answer.status_code == 200, answer.text
    return sorted(server["name"] for server in answer.json()["servers"])


def test_tags_and_metadata_are_set_at_creation(lab: ApiLab, fleet: dict[str, Any]) -> None:
    view = fleet[f"{PREFIX}-a"]
    assert (view["tags"], view["metadata"]) == (["red", "blue"], {"role": "web"})
    server = lab.server(view["id"])
    assert (server["tags"], server["metadata"]) == (["red", "blue"], {"role": "web"})
    for body, field in (
        ({"tags": ["a,b"]}, "tags"),
        ({"tags": ["x" * 61]}, "tags"),
        ({"metadata": {"bad/key": "v"}}, "metadata"),
        ({"metadata": {"k": "v" * 256}}, "metadata"),
    ):
        refused = lab.admin("POST", "/instances", json={"name": f"{PREFIX}-bad", **body})
        assert refused.status_code == 400 and field in refused.json()["error"], refused.text
    assert listed(lab) == sorted(FLEET)  # nothing made by the refused ones


def test_tag_filters(lab: ApiLab, fleet: dict[str, Any]) -> None:
    a, b, c = sorted(FLEET)
    assert listed(lab, tags="red") == [a, b]
    assert listed(lab, tags="red,blue") == [a]
    assert listed(lab, **{"tags-any": "blue,green"}) == [a]
    assert listed(lab, **{"not-tags": "red,blue"}) == [b, c]  # not all of them
    assert listed(lab, **{"not-tags-any": "blue,green"}) == [b, c]  # none of them
    assert listed(lab, **{"not-tags-any": "red"}) == [c]
    # Before 2.26 nova knows no tag filter: ignored, every server listed.
    assert listed(lab, version="2.25", tags="red") == [a, b, c]


def test_unknown_filter_keys_are_ignored_until_2_75(lab: ApiLab, fleet: dict[str, Any]) -> None:
    assert listed(lab, version="2.74", tag="red", colour="blue") == sorted(FLEET)
    strict = lab.compute("GET", "/servers", params={"tag": "red"}, version="2.75")
    assert strict.status_code == 400
    assert "'tag' was unexpected" in strict.json()["badRequest"]["message"]


def test_status_and_name_filters(lab: ApiLab, fleet: dict[str, Any]) -> None:
    assert listed(lab, status="ACTIVE") == sorted(FLEET)
    assert listed(lab, status=["ERROR", "ACTIVE"]) == sorted(FLEET)  # every status given counts
    assert listed(lab, status="SHUTOFF") == []
    upper = lab.compute("GET", "/servers", params={"name": f"^{PREFIX.upper()}-[AB]$"}).json()
    assert sorted(s["name"] for s in upper["servers"]) == sorted(FLEET)[:2]  # as MySQL: any case


def test_paging_through_a_filtered_list(lab: ApiLab, fleet: dict[str, Any]) -> None:
    query = {"name": f"^{PREFIX}-", "tags": "red", "limit": 1}
    first = lab.compute("GET", "/servers/detail", params=query, version="2.26").json()
    (link,) = first["servers_links"]
    assert "tags=red" in link["href"] and f"marker={first['servers'][0]['id']}" in link["href"]
    headers = {"X-Auth-Token": lab.token(), "OpenStack-API-Version": "compute 2.26"}
    second = requests.get(link["href"], headers=headers, timeout=30).json()
    third = requests.get(second["servers_links"][0]["href"], headers=headers, timeout=30).json()
    pages = [first["servers"], second["servers"], third["servers"]]
    assert sorted(s["name"] for page in pages for s in page) == sorted(FLEET)[:2]
    assert third == {"servers": []}  # the second page was full: one more, empty, no link
    # The marker is any server of the project, even one the filters leave out (as nova): the
    # page starts after its place in the sort order.
    every = lab.compute("GET", "/servers", params={"name": f"^{PREFIX}-"}).json()["servers"]
    order = [server["name"] for server in every]
    c = f"{PREFIX}-c"
    query = {"name": f"^{PREFIX}-", "tags": "red", "marker": fleet[c]["id"]}
    marked = lab.compute("GET", "/servers", params=query, version="2.26").json()["servers"]
    after = [name for name in order[order.index(c) + 1 :] if "red" in FLEET[name][0]]
    assert [server["name"] for server in marked] == after


def test_max_limit_caps_every_page(lab: ApiLab, fleet: dict[str, Any]) -> None:
    assert lab.admin("PUT", "/faults", json={"max_limit": 1}).status_code == 200
    try:
        capped = lab.compute("GET", "/servers", params={"name": f"^{PREFIX}-", "limit": 50}).json()
        assert len(capped["servers"]) == 1 and capped["servers_links"][0]["rel"] == "next"
    finally:
        lab.admin("PUT", "/faults", json={"max_limit": None})


@pytest.fixture()
def cloud(lab: ApiLab, monkeypatch: pytest.MonkeyPatch) -> OpenStackCloud:
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(lab.clouds_yaml))
    return OpenStackCloud(CLOUD)


def test_openstack_cloud_sends_the_filters_and_reads_every_page(
    lab: ApiLab, fleet: dict[str, Any], cloud: OpenStackCloud
) -> None:
    a, b, c = sorted(FLEET)

    def names(**filters: Any) -> list[str]:
        return sorted(s.name for s in cloud.list_servers(name_regex=f"^{PREFIX}-", **filters))

    assert lab.admin("PUT", "/faults", json={"max_limit": 1}).status_code == 200
    try:  # one server a page: openstacksdk follows nova's next links
        assert names() == [a, b, c]
        assert names(tags=("red",)) == [a, b]
        assert names(any_tags=("blue", "green")) == [a]
        assert names(not_any_tags=("blue",)) == [b, c]
        assert names(statuses=("ERROR", "ACTIVE")) == [a, b, c]
        assert names(statuses=("SHUTOFF",)) == []
    finally:
        lab.admin("PUT", "/faults", json={"max_limit": None})
    [found] = [s for s in cloud.list_servers(name_regex=f"^{PREFIX}-a$")]
    assert (found.tags, dict(found.metadata)) == (("red", "blue"), {"role": "web"})


def test_a_cloud_below_2_26_shows_no_tags(
    lab: ApiLab, fleet: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = yaml.safe_load(lab.clouds_yaml.read_text())
    config["clouds"][CLOUD]["compute_api_version"] = "2.25"
    old = tmp_path / "clouds.yaml"
    old.write_text(yaml.safe_dump(config))
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(old))
    servers = OpenStackCloud(CLOUD).list_servers(name_regex=f"^{PREFIX}-", tags=("red",))
    assert sorted(s.name for s in servers) == sorted(FLEET)  # the filter ignored...
    assert {s.tags for s in servers} == {None}  # ...and the tags unknown, not empty
