"""Retries of refused API requests and the request-rate cap (issue 10, point 3), as
``cloudrescue/cloud/retry.py`` documents them: through a real ``requests.Session`` whose
transport is a scripted fake, on a fake clock (nothing waits, nothing is timed)."""

from __future__ import annotations

import email.utils
import itertools
import json
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from cloudrescue.cloud import retry
from cloudrescue.cloud.openstack import OpenStackCloud
from cloudrescue.cloud.retry import (
    BASE_DELAY,
    MAX_ATTEMPTS,
    MAX_DELAY,
    MAX_TOTAL_WAIT,
    PacedAdapter,
    RateLimiter,
    Retry,
    RetryPolicy,
    Timing,
    gave_up,
    refusal,
    retry_after_seconds,
)
from cloudrescue.errors import InvalidInputError
from tests.fakes import FakeClock

URL = "https://cloud.example/compute/v2.1/servers/1234"
WALL = 1_700_000_000.0  # the fake wall clock (for HTTP-date Retry-After)
OVER_LIMIT = {"overLimit": {"code": 413, "message": "This request was rate-limited."}}


@dataclass
class Answer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None


@dataclass
class Sent:
    method: str
    url: str
    body: Any
    at: float  # the fake clock when it was sent


class ScriptedTransport(BaseAdapter):
    """Answers each send with the next scripted answer (the last one repeats)."""

    def __init__(self, clock: FakeClock, answers: list[Answer]) -> None:
        super().__init__()
        self.clock = clock
        self.answers = answers
        self.sent: list[Sent] = []
        self.closed = 0

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, **kwargs: Any
    ) -> requests.Response:
        self.sent.append(Sent(request.method or "", request.url or "", request.body, self.clock()))
        answer = self.answers[min(len(self.sent), len(self.answers)) - 1]
        response = requests.Response()
        response.status_code = answer.status
        response.headers = CaseInsensitiveDict(answer.headers)
        body = answer.body
        response._content = json.dumps(body).encode() if isinstance(body, dict) else b""
        response.url = request.url or ""
        response.request = request
        return response

    def close(self) -> None:
        self.closed += 1


class Chance:
    """The jitter's random numbers, scripted (the last one repeats)."""

    def __init__(self, *values: float) -> None:
        self.values = list(values) or [0.0]
        self.drawn = 0

    def __call__(self) -> float:
        value = self.values[min(self.drawn, len(self.values) - 1)]
        self.drawn += 1
        return value


@dataclass
class Rig:
    clock: FakeClock
    transport: ScriptedTransport
    session: requests.Session
    sleeps: list[float]
    retries: list[Retry]


def rig(
    *answers: Answer,
    chance: Chance | None = None,
    policy: RetryPolicy | None = None,
    limiter_rate: float | None = None,
) -> Rig:
    clock = FakeClock()
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.sleep(seconds)

    timing = Timing(
        clock=clock,
        wall=lambda: WALL + clock() - 1000.0,
        sleep=sleep,
        random=chance or Chance(0.0),
    )
    transport = ScriptedTransport(clock, list(answers))
    session = requests.Session()
    session.mount("https://", transport)
    retries: list[Retry] = []
    limiter = RateLimiter(limiter_rate, timing=timing) if limiter_rate else None
    retry.install(session, policy=policy, limiter=limiter, timing=timing, on_retry=retries.append)
    return Rig(clock, transport, session, sleeps, retries)


# -- which answers are retried ---------------------------------------------------------------


def test_only_answers_that_say_not_accepted_are_retried() -> None:
    over_limit = json.dumps(OVER_LIMIT).encode()
    for method in ("GET", "DELETE", "PUT", "POST"):
        assert refusal(method, 429, b"") == "rate limited"
        assert refusal(method, 503, b"<html>No server is available</html>") == "service unavailable"
        assert refusal(method, 413, over_limit) == "over limit"
        for status in (400, 401, 403, 404, 409, 500, 502, 504):
            assert refusal(method, status, b"") is None, (method, status)
    quota = {"overLimit": {"code": 413, "message": "Quota exceeded for ram: Requested 2048"}}
    assert refusal("POST", 413, json.dumps(quota).encode()) is None  # waiting frees no quota
    assert refusal("PUT", 413, b'{"error": "Request Entity Too Large"}') is None  # a body size
    assert refusal("PUT", 413, b"<html>413</html>") is None


def test_retry_after_is_read_as_seconds_or_an_http_date() -> None:
    assert retry_after_seconds("3", WALL) == 3.0
    assert retry_after_seconds(" 2 ", WALL) == 2.0
    assert retry_after_seconds("0", WALL) == 0.0
    assert retry_after_seconds("-5", WALL) == 0.0
    date = email.utils.formatdate(WALL + 30, usegmt=True)  # "Tue, 14 Nov 2023 22:13:50 GMT"
    assert retry_after_seconds(date, WALL) == 30.0
    assert retry_after_seconds(email.utils.formatdate(WALL - 60, usegmt=True), WALL) == 0.0
    assert retry_after_seconds(date.replace("GMT", "-0000"), WALL) == 30.0
    for nonsense in (None, "", "soon", "nan", "inf", "Tuesday"):
        assert retry_after_seconds(nonsense, WALL) is None, nonsense


def test_the_backoff_doubles_with_equal_jitter_and_retry_after_is_never_shortened() -> None:
    policy = RetryPolicy()
    assert [policy.delay(n, None, 0.0) for n in range(7)] == [
        BASE_DELAY * 2**n / 2 for n in range(5)
    ] + [MAX_DELAY / 2, MAX_DELAY / 2]
    assert [policy.delay(n, None, 0.999) for n in range(3)] == pytest.approx([0.5, 1.0, 2.0], 1e-2)
    assert policy.delay(5, None, 1.0) == policy.delay(9, None, 1.0) == MAX_DELAY  # the cap
    assert policy.delay(0, 3.0, 0.0) == 3.0
    assert policy.delay(5, 3.0, 0.999) == pytest.approx(3.5, 1e-2)  # the cloud's word, + jitter
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)


# -- the adapter on a requests session -------------------------------------------------------


def test_a_429_storm_with_retry_after_is_waited_out() -> None:
    limited = Answer(429, {"Retry-After": "2"}, {"overLimit": {"code": 429, "retryAfter": "2"}})
    r = rig(limited, limited, limited, Answer(200, body={"server": {}}), chance=Chance(0.0, 0.5))
    answer = r.session.get(URL, headers={"X-Auth-Token": "gAAAA-secret"})
    assert answer.status_code == 200 and gave_up(answer) is None
    assert len(r.transport.sent) == 4
    assert r.sleeps == [2.0, 2.25, 2.25]  # Retry-After + 0.5 s x chance: never sooner
    gaps = [b.at - a.at for a, b in itertools.pairwise(r.transport.sent)]
    assert gaps == r.sleeps
    assert [(x.status, x.attempt, x.why) for x in r.retries] == [
        (429, 2, "rate limited"), (429, 3, "rate limited"), (429, 4, "rate limited"),
    ]  # fmt: skip
    assert r.retries[0].describe() == (
        "HTTP 429 (rate limited) on GET /compute/v2.1/servers/1234: retrying in 2.0 s "
        f"(attempt 2 of {MAX_ATTEMPTS})"
    )


def test_an_http_date_retry_after_is_honoured() -> None:
    date = email.utils.formatdate(WALL + 7, usegmt=True)
    r = rig(Answer(503, {"Retry-After": date}), Answer(200))
    assert r.session.get(URL).status_code == 200
    assert r.sleeps == [7.0]


def test_a_refused_post_is_sent_again_with_the_same_body() -> None:
    rescue = {"rescue": {"adminPass": "pw-1"}}
    r = rig(Answer(503), Answer(413, body=OVER_LIMIT), Answer(200, body={"adminPass": "pw-1"}))
    answer = r.session.post(f"{URL}/action", json=rescue)
    assert answer.json() == {"adminPass": "pw-1"}
    assert [s.method for s in r.transport.sent] == ["POST"] * 3
    assert {s.body for s in r.transport.sent} == {json.dumps(rescue).encode()}
    assert r.sleeps == [0.25, 0.5]  # no Retry-After: the backoff (chance 0: its lower half)


@pytest.mark.parametrize("status", [400, 403, 404, 409, 500, 502, 504])
def test_other_answers_are_handed_back_at_once(status: int) -> None:
    quota = {"forbidden": {"code": 403, "message": "Quota exceeded for instances"}}
    r = rig(Answer(status, {"Retry-After": "1"}, quota))
    for send in (r.session.get, r.session.post):
        assert send(URL).status_code == status
    assert len(r.transport.sent) == 2 and r.sleeps == [] and r.retries == []


def test_a_quota_413_and_a_stream_body_are_not_retried() -> None:
    quota = {"overLimit": {"code": 413, "message": "Quota exceeded for metadata items"}}
    r = rig(Answer(413, {"Retry-After": "0"}, quota), Answer(200))
    assert r.session.post(URL, json={}).status_code == 413
    r = rig(Answer(429), Answer(200))
    assert r.session.put(URL, data=iter([b"chunk"])).status_code == 429  # cannot be sent twice
    assert len(r.transport.sent) == 1


def test_attempts_are_capped() -> None:
    r = rig(Answer(429), chance=Chance(1.0))
    answer = r.session.get(URL)
    assert answer.status_code == 429
    assert len(r.transport.sent) == MAX_ATTEMPTS
    assert r.sleeps == [0.5, 1.0, 2.0, 4.0, 8.0]
    stopped = gave_up(answer)
    assert stopped is not None and (stopped.attempts, stopped.waited) == (MAX_ATTEMPTS, 15.5)
    assert stopped.describe() == f"still refused after {MAX_ATTEMPTS} attempts over 15.5 s"


def test_the_total_wait_is_capped() -> None:
    r = rig(Answer(429, {"Retry-After": "25"}))
    answer = r.session.get(URL)
    assert r.sleeps == [25.0, 25.0]  # a third wait would pass MAX_TOTAL_WAIT: not started
    assert len(r.transport.sent) == 3
    stopped = gave_up(answer)
    assert stopped is not None and stopped.waited == 50.0
    assert stopped.describe() == (
        "still refused after 3 attempts over 50.0 s: the next wait (25.0 s) would pass the "
        f"{MAX_TOTAL_WAIT:.0f} s cloudrescue waits at most"
    )


def test_a_retry_after_past_the_cap_is_not_waited_for() -> None:
    r = rig(Answer(429, {"Retry-After": "3600"}), Answer(200))
    answer = r.session.get(URL)
    assert answer.status_code == 429 and r.sleeps == [] and len(r.transport.sent) == 1
    stopped = gave_up(answer)
    assert stopped is not None and stopped.describe() == (
        "still refused after 1 attempt over 0.0 s: the cloud asks to wait 3600 s, more than "
        "the 60 s cloudrescue waits at most"
    )
    short = rig(Answer(429, {"Retry-After": "3600"}), policy=RetryPolicy(max_total_wait=7200))
    assert short.session.get(URL).status_code == 429 and short.sleeps == [3600.0, 3600.0]


def test_each_retry_is_logged_without_headers_or_query(caplog: pytest.LogCaptureFixture) -> None:
    r = rig(Answer(429, {"Retry-After": "1"}), Answer(200))
    with caplog.at_level(logging.INFO, logger="cloudrescue.cloud.retry"):
        r.session.get(f"{URL}?name=web", headers={"X-Auth-Token": "gAAAA-secret"})
    [record] = [rec for rec in caplog.records if rec.name == "cloudrescue.cloud.retry"]
    assert record.levelno == logging.INFO
    message = record.getMessage()
    assert message.startswith("HTTP 429 (rate limited) on GET /compute/v2.1/servers/1234:")
    assert "secret" not in message and "name=web" not in message


def test_install_wraps_each_adapter_once_and_close_reaches_them() -> None:
    r = rig(Answer(200))
    session = r.session
    wrapped = {prefix: adapter for prefix, adapter in session.adapters.items()}
    assert all(isinstance(adapter, PacedAdapter) for adapter in wrapped.values())
    retry.install(session)
    assert dict(session.adapters) == wrapped  # not wrapped twice
    paced = session.adapters["https://"]
    assert isinstance(paced, PacedAdapter) and paced.inner is r.transport
    session.close()
    assert r.transport.closed == 1


# -- the rate cap ----------------------------------------------------------------------------


def test_the_rate_cap_spaces_requests_and_saves_no_burst_when_idle() -> None:
    clock = FakeClock()
    limiter = RateLimiter(4.0, timing=Timing(clock=clock, sleep=clock.sleep))
    sent: list[float] = []
    for _ in range(5):
        limiter.acquire()
        sent.append(clock() - 1000.0)
    assert sent == [0.0, 0.25, 0.5, 0.75, 1.0]
    clock.sleep(60.0)  # idle a minute: still one token at most, not 240
    for _ in range(3):
        limiter.acquire()
        sent.append(clock() - 1000.0)
    assert sent[5:] == [61.0, 61.25, 61.5]


def test_a_burst_lets_that_many_through_at_once() -> None:
    clock = FakeClock()
    limiter = RateLimiter(2.0, burst=3, timing=Timing(clock=clock, sleep=clock.sleep))
    assert [limiter.acquire() for _ in range(5)] == [0.0, 0.0, 0.0, 0.5, 0.5]
    for wrong in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            RateLimiter(wrong)
    with pytest.raises(ValueError):
        RateLimiter(1.0, burst=0.5)


def test_threads_share_the_rate_each_reservation_once() -> None:
    """Eight threads reserve at the same instant: each gets its own place in the queue."""
    clock = FakeClock()
    limiter = RateLimiter(2.0, timing=Timing(clock=clock, sleep=clock.sleep))
    start = threading.Barrier(8)
    waits: list[float] = []
    guard = threading.Lock()

    def reserve() -> None:
        start.wait()
        wait = limiter.reserve()
        with guard:
            waits.append(wait)

    threads = [threading.Thread(target=reserve) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(waits) == [0.5 * n for n in range(8)]


def test_retries_take_their_tokens_too() -> None:
    r = rig(Answer(429, {"Retry-After": "0"}), Answer(429, {"Retry-After": "0"}), Answer(200),
            limiter_rate=1.0)  # fmt: skip
    assert r.session.get(URL).status_code == 200
    assert [s.at - 1000.0 for s in r.transport.sent] == [0.0, 1.0, 2.0]  # one a second
    assert r.sleeps == [0.0, 1.0, 0.0, 1.0]  # Retry-After 0, then the token's wait


def test_a_bad_api_rate_is_refused_before_the_cloud_is_asked() -> None:
    for wrong in (0.0, -2.0, float("nan"), float("inf")):
        with pytest.raises(InvalidInputError, match="API request rate"):
            OpenStackCloud("no-such-cloud", api_rate=wrong)
