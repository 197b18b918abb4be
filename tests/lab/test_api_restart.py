"""A daemon restart keeps the server records (runs last: the lab is not the same after it)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from .api_harness import ApiLab, shared_lab

pytestmark = pytest.mark.lab


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiLab]:
    yield from shared_lab(tmp_path_factory)


@pytest.fixture(scope="module")
def restarted(lab: ApiLab) -> str:
    """lab-2 rescued and tagged, then the daemon stopped (SIGTERM) and started again."""
    sid = str(lab.server("lab-2")["id"])
    assert lab.compute("PUT", f"/servers/{sid}/tags/kept", version="2.26").status_code == 201
    assert lab.compute("POST", f"/servers/{sid}/action", json={"rescue": None}).ok
    lab.wait_for(sid, "RESCUE")
    lab.stop_daemon()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{lab.endpoint}/identity/", timeout=5)
    lab.start_daemon()
    return sid


def test_records_survive_a_restart(lab: ApiLab, restarted: str) -> None:
    server = lab.server(restarted)
    assert server["status"] == "RESCUE" and server["OS-EXT-STS:vm_state"] == "rescued"
    assert server["tags"] == ["kept"]
    assert lab.server("lab-1")["status"] == "ACTIVE"
    assert lab.admin("GET", "/health").json() == {"ready": True, "instances": 2}


def test_instances_can_be_operated_after_a_restart(lab: ApiLab, restarted: str) -> None:
    assert lab.compute("POST", f"/servers/{restarted}/action", json={"unrescue": None}).ok
    lab.wait_for(restarted, "ACTIVE")
