"""Refused requests and one bad apple, through ``OpenStackCloud`` on the shared lab (issue 10,
points 3 and 7): a 429 storm with ``Retry-After`` is waited out and the wait honoured, a 413
``overLimit`` with an HTTP-date ``Retry-After`` too (one parametrized test), a 403 over quota
is not retried, a ``Retry-After`` past the cap is not waited for, a storm that never ends is
given up after ``MAX_ATTEMPTS`` sends (glance's too: openstacksdk's own retries are off,
nothing is retried twice), ``api_rate`` spaces the requests of several threads;
``rescue_fails`` and ``ssh_cut`` hit their instance only.

What the client did is read from the lab's own request log (``daemon.log``: one line per
request, stamped by the daemon when it answered), and from what is left of a fault's count:
nothing here times the client.
"""

from __future__ import annotations

import itertools
import re
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import paramiko
import pytest

from cloudrescue.cloud.base import ServerInfo
from cloudrescue.cloud.openstack import OpenStackCloud
from cloudrescue.cloud.retry import MAX_ATTEMPTS
from cloudrescue.cloud.wait import wait_for_status
from cloudrescue.errors import CloudError
from cloudrescue.events import SilentEvents

from .api_harness import CLOUD, ApiLab, shared_lab
from .labkit import key_login, ssh_client, tcp_open

pytestmark = pytest.mark.lab
PREFIX = f"rty{uuid.uuid4().hex[:6]}"
FAILS, CUT = f"{PREFIX}-fails", f"{PREFIX}-cut"  # the instance whose rescue fails, is cut
LOG_LINE = re.compile(r"^(\S+ \S+) INFO cloudrescue\.lab\.api: (\w+) (\S+) -> (\d+) \(")
LOG_STAMP = "%Y-%m-%d %H:%M:%S,%f"
STAMP_SLACK = 0.002  # the log's stamps are whole milliseconds
STATE_TIMEOUT = 90.0


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiLab]:
    yield from shared_lab(tmp_path_factory)


@pytest.fixture(scope="module")
def pair(lab: ApiLab) -> Iterator[dict[str, dict[str, Any]]]:
    """This module's two instances (admin views by name), booted in parallel."""

    def add(name: str) -> dict[str, Any]:
        answer = lab.admin("POST", "/instances", json={"name": name})
        assert answer.status_code == 201, answer.text
        view: dict[str, Any] = answer.json()["instance"]
        return view

    with ThreadPoolExecutor(2) as pool:
        views = dict(zip((FAILS, CUT), pool.map(add, (FAILS, CUT)), strict=True))
    try:
        yield views
    finally:
        lab.admin("DELETE", "/faults")
        for view in views.values():
            lab.admin("DELETE", f"/instances/{view['id']}")


@pytest.fixture()
def cloud(lab: ApiLab, monkeypatch: pytest.MonkeyPatch) -> Iterator[OpenStackCloud]:
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(lab.clouds_yaml))
    yield OpenStackCloud(CLOUD)
    assert lab.admin("DELETE", "/faults").status_code == 200


@dataclass(frozen=True)
class Logged:
    at: datetime
    method: str
    path: str
    status: int


class RequestLog:
    """The lab's request log from now on."""

    def __init__(self, lab: ApiLab) -> None:
        self.path = lab.layout.daemon_log
        self.start = self.path.stat().st_size

    def of(self, method: str, path: str, count: int, timeout: float = 10.0) -> list[Logged]:
        """The requests logged since this log was made for exactly ``method`` ``path``, once
        there are at least ``count`` of them."""
        deadline = time.monotonic() + timeout
        while True:
            with self.path.open("rb") as log:
                log.seek(self.start)
                lines = log.read().decode(errors="replace").splitlines()
            found = [
                Logged(datetime.strptime(m[1], LOG_STAMP), m[2], m[3], int(m[4]))
                for m in map(LOG_LINE.match, lines)
                if m and m[2] == method and m[3] == path
            ]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.1)


def gaps(logged: list[Logged]) -> list[float]:
    return [(b.at - a.at).total_seconds() for a, b in itertools.pairwise(logged)]


def set_faults(lab: ApiLab, **faults: Any) -> None:
    answer = lab.admin("PUT", "/faults", json=faults)
    assert answer.status_code == 200, answer.text


def server_path(sid: str) -> str:
    return f"/compute/v2.1/servers/{sid}"


# -- refused requests ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "action", "fault", "answered", "statuses", "least_wait"),
    [
        # Each retry came Retry-After (1 s) or more after the refusal: the first one too, where
        # the backoff alone would have waited 0.25-0.5 s.
        pytest.param(
            "GET", "", {"count": 3, "retry_after": 1},
            lambda cloud, sid: cloud.get_server(sid).name == FAILS,
            [429, 429, 429, 200], 1.0 - STAMP_SLACK, id="429-seconds-get",
        ),
        # ``os-getConsoleOutput`` is a POST: refused by the limiter, so sent again. The date is
        # 2 s ahead rounded up to a whole second: never less than 2 s of waiting.
        pytest.param(
            "POST", "/action",
            {"count": 1, "status": 413, "retry_after": 2, "retry_after_format": "date"},
            lambda cloud, sid: "Linux version" in cloud.console_output(sid),
            [413, 200], 2.0 - 0.05, id="413-over-limit-http-date-post",
        ),
    ],
)  # fmt: skip
def test_a_refusal_storm_is_waited_out_and_retry_after_honoured(
    lab: ApiLab,
    pair: dict[str, Any],
    cloud: OpenStackCloud,
    method: str,
    action: str,
    fault: dict[str, Any],
    answered: Callable[[OpenStackCloud, str], bool],
    statuses: list[int],
    least_wait: float,
) -> None:
    """A 429 with ``Retry-After`` in seconds, and a 413 ``overLimit`` with an HTTP date: each
    refusal is sent again, no sooner than it says, until the cloud answers."""
    sid = pair[FAILS]["id"]
    log = RequestLog(lab)
    set_faults(
        lab,
        api_rate_limit={**fault, "method": method, "path_regex": f"/servers/{sid}{action}$"},
    )
    assert answered(cloud, sid)
    logged = log.of(method, f"{server_path(sid)}{action}", len(statuses))
    assert [entry.status for entry in logged] == statuses
    assert all(gap >= least_wait for gap in gaps(logged)), gaps(logged)
    assert "api_rate_limit" not in lab.admin("GET", "/faults").json()  # every refusal was used


def test_403_over_quota_is_not_retried(
    lab: ApiLab, pair: dict[str, Any], cloud: OpenStackCloud
) -> None:
    sid = pair[FAILS]["id"]
    log = RequestLog(lab)
    set_faults(lab, api_over_quota={"count": 2, "method": "GET", "path_regex": f"/servers/{sid}$"})
    with pytest.raises(CloudError, match="HTTP 403: Quota exceeded for instances") as raised:
        cloud.get_server(sid)
    assert "still refused" not in raised.value.message
    assert lab.admin("GET", "/faults").json()["api_over_quota"]["count"] == 1  # one request
    assert [entry.status for entry in log.of("GET", server_path(sid), 1)] == [403]


def test_a_retry_after_past_the_cap_is_not_waited_for(
    lab: ApiLab, pair: dict[str, Any], cloud: OpenStackCloud
) -> None:
    sid = pair[FAILS]["id"]
    log = RequestLog(lab)
    set_faults(lab, api_rate_limit={"path_regex": f"/servers/{sid}$", "retry_after": 3600})
    with pytest.raises(CloudError, match=r"HTTP 429: .*still refused after 1 attempt") as raised:
        cloud.get_server(sid)
    assert raised.value.message.endswith(
        "(still refused after 1 attempt over 0.0 s: the cloud asks to wait 3600 s, more than "
        "the 60 s cloudrescue waits at most)"
    )
    assert [entry.status for entry in log.of("GET", server_path(sid), 1)] == [429]


def test_an_endless_storm_is_given_up_and_glance_is_not_retried_twice(
    lab: ApiLab, pair: dict[str, Any], cloud: OpenStackCloud
) -> None:
    """openstacksdk retries glance's 503s 5 times by itself (keystoneauth, above this
    transport): that is off, so the lab sees ``MAX_ATTEMPTS`` requests, not 6 times that."""
    log = RequestLog(lab)
    set_faults(
        lab,
        api_error={"method": "GET", "path_regex": "^/image/v2/images$", "retry_after": 0},
    )
    with pytest.raises(CloudError, match=f"HTTP 503: .*still refused after {MAX_ATTEMPTS} att"):
        cloud.find_image("cloudrescue-rescue")
    logged = log.of("GET", "/image/v2/images", MAX_ATTEMPTS)
    assert [entry.status for entry in logged] == [503] * MAX_ATTEMPTS


def test_api_rate_caps_the_requests_of_every_thread(
    lab: ApiLab, pair: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(lab.clouds_yaml))
    paced = OpenStackCloud(CLOUD, api_rate=5.0)
    sid = pair[CUT]["id"]
    paced.get_server(sid)  # token and discovery first
    log = RequestLog(lab)
    with ThreadPoolExecutor(3) as pool:
        names = list(pool.map(lambda _: paced.get_server(sid).name, range(9)))
    assert names == [CUT] * 9
    logged = log.of("GET", server_path(sid), 9)
    assert len(logged) == 9
    # 9 requests at 5 a second (a bucket of one): 8 intervals of 0.2 s at least.
    span = (logged[-1].at - logged[0].at).total_seconds()
    assert span >= 8 * 0.2 - 0.05, span


# -- faults of one instance ------------------------------------------------------------------


def _rescue(cloud: OpenStackCloud, server: ServerInfo) -> str:
    password = secrets.token_urlsafe(12)
    started = cloud.rescue(server, admin_password=password, image=None)
    return started.admin_password


def _wait(cloud: OpenStackCloud, sid: str, *statuses: str) -> ServerInfo:
    return wait_for_status(
        cloud, sid, frozenset(statuses), timeout=STATE_TIMEOUT, events=SilentEvents(),
        interval=0.3,
    )  # fmt: skip


def _until(lab: ApiLab, sid: str, status: str) -> dict[str, Any]:
    """Poll the server body until ``status`` with no task (ERROR included, unlike wait_for)."""
    deadline = time.monotonic() + STATE_TIMEOUT
    while True:
        server = lab.server(sid)
        if server["status"] == status and server["OS-EXT-STS:task_state"] is None:
            return server
        assert time.monotonic() < deadline, server
        time.sleep(0.3)


def _rescue_login(address: str, password: str) -> str:
    """``ok`` when root logs in to the rescue system at ``address`` with ``password`` (its
    host key pinned to the rescue's own), else why not."""
    try:
        client = ssh_client(address, "root", password=password, kinds=("rescue",))
    except (paramiko.SSHException, OSError) as error:
        return f"failed: {type(error).__name__}: {error}"
    client.close()
    return "ok"


def test_one_rescue_fails_one_rescue_is_cut_each_alone(
    lab: ApiLab, pair: dict[str, Any], cloud: OpenStackCloud
) -> None:
    fails, cut = pair[FAILS], pair[CUT]
    set_faults(lab, rescue_fails=[FAILS], ssh_cut=[cut["id"]])  # by name and by id
    servers = {name: cloud.find_server(name) for name in (FAILS, CUT)}
    with ThreadPoolExecutor(2) as pool:  # one connection, two threads, as a fleet run has
        passwords = dict(zip(servers, pool.map(lambda s: _rescue(cloud, s), servers.values()),
                             strict=True))  # fmt: skip
        waits = {name: pool.submit(_wait, cloud, servers[name].id, "RESCUE") for name in servers}
        with pytest.raises(CloudError, match=f"instance {FAILS} went to ERROR"):
            waits[FAILS].result()
        rescued = waits[CUT].result()

    # rescue_fails: nova's driver failure, as our backend sees it.
    failed = lab.server(fails["id"])
    assert (failed["status"], failed["OS-EXT-STS:power_state"]) == ("ERROR", 4)
    assert failed["fault"]["code"] == 400
    assert failed["fault"]["message"].startswith(
        f"Instance {fails['id']} cannot be rescued: Driver Error:"
    )
    assert cloud.get_server(fails["id"]).status == "ERROR"
    assert not tcp_open(fails["address"])  # powered off: nothing answers there

    # ssh_cut: its rescue is up (RESCUE), but nothing gets through to its sshd.
    assert rescued.status == "RESCUE"
    assert not tcp_open(cut["address"])
    assert _rescue_login(cut["address"], passwords[CUT]).startswith("failed:")

    # Cleared, and recovered: the failed one by a hard reboot (nova allows it from ERROR),
    # the cut one unrescued: its guest's own sshd answers again (the cut went with the rescue).
    lab.admin("DELETE", "/faults")
    answer = lab.compute(
        "POST", f"/servers/{fails['id']}/action", json={"reboot": {"type": "HARD"}}
    )
    assert answer.status_code == 202, answer.text
    cloud.unrescue(cut["id"])
    with ThreadPoolExecutor(2) as pool:
        back = list(pool.map(lambda s: _until(lab, s, "ACTIVE"), (fails["id"], cut["id"])))
    assert [server["status"] for server in back] == ["ACTIVE", "ACTIVE"]
    key = lab.layout.lab_key
    assert key_login(cut["address"], "debian", key) == "ok"
    assert key_login(fails["address"], "debian", key) == "ok"

    # With no fault left, the one whose rescue failed is rescued and its rescue logs in.
    password = _rescue(cloud, cloud.get_server(fails["id"]))
    assert _wait(cloud, fails["id"], "RESCUE").status == "RESCUE"
    assert _rescue_login(fails["address"], password) == "ok"
    cloud.unrescue(fails["id"])
    assert _until(lab, fails["id"], "ACTIVE")["status"] == "ACTIVE"
