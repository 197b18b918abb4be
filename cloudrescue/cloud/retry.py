"""Requests the cloud refused for now (HTTP 429, 503, 413 ``overLimit``) sent again after a
jittered, growing wait that honours ``Retry-After``; and an optional cap on the request rate.

Both live in one place, the HTTP transport: ``PacedAdapter`` wraps the ``requests`` adapters
of keystoneauth's session (``install``), so every request openstacksdk makes for cloudrescue
(keystone's tokens and discovery, nova, glance, each page of a list) goes through them, from
every thread of a fleet run (one shared connection). Nothing here holds a lock while it waits.

Why not keystoneauth's own retries (``status_code_retries``, ``retriable_status_codes``): they
read ``Retry-After`` only as whole seconds (not as an HTTP date), wait exactly that long with
no jitter (every worker told "1" comes back in the same instant), have no cap on the wait
(a ``Retry-After: 3600`` sleeps an hour), sleep with ``time.sleep`` (tests would wait), and
log at WARNING through their own logger. Their ``rate_limit`` is one semaphore per service
(compute and image each get the full rate) that lets a burst through after any idle time.
openstacksdk turns those retries on for glance (``image_status_code_retries: 5``, on 429 and
503): ``OpenStackCloud`` sets every ``SDK_RETRY_OPTIONS`` to 0, so nothing is retried twice
(keystoneauth would retry, around this adapter, what it already retried).

The policy, with its constants:

- an answer is retried only when it says the request was refused for now: 429, 503, and 413
  whose body is nova's ``overLimit`` and not a quota (``refusal``); 403 over-quota, any other
  4xx, 500, 502 and 504 are handed back at once;
- at most ``MAX_ATTEMPTS`` sends of one request, and at most ``MAX_TOTAL_WAIT`` seconds of
  waiting between them: a wait that would go past it is not started, the last answer is
  handed back (the caller's error says how long it was tried);
- the wait before retry *n* (0, 1, ...): with ``Retry-After`` (seconds, or an HTTP date), that
  long plus a random 0 to ``RETRY_AFTER_JITTER`` seconds, never less (so the workers the
  cloud sent away at once come back spread out); without it, ``BASE_DELAY`` x 2^n capped at
  ``MAX_DELAY``, times a random 0.5 to 1 ("equal jitter");
- the rate cap (``RateLimiter``, ``api_rate`` requests per second across all threads): a token
  bucket of ``burst`` tokens (default 1: evenly spaced requests; at most ``burst + rate x t``
  in any ``t`` seconds). Every send takes a token, retries included.

Time and chance come in through ``Timing`` (clock, wall clock, sleep, random), so the unit
tests drive all of it without waiting.
"""

from __future__ import annotations

import datetime
import email.utils
import json
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import BaseAdapter

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 6  # sends of one request: the first and at most 5 retries
MAX_TOTAL_WAIT = 60.0  # seconds of waiting, all the retries of one request together
BASE_DELAY = 0.5  # seconds before the first retry when the cloud says nothing (then doubled)
MAX_DELAY = 16.0  # seconds, the longest wait of one retry when the cloud says nothing
RETRY_AFTER_JITTER = 0.5  # seconds at most added to the cloud's Retry-After

RATE_LIMITED = 429
SERVICE_UNAVAILABLE = 503
TOO_LARGE = 413
# Idempotent methods: sending one again does what sending it once does.
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRIED_STATUSES = frozenset({RATE_LIMITED, SERVICE_UNAVAILABLE, TOO_LARGE})  # see ``refusal``
# Answers that say the request was not accepted, so even a POST may be sent again.
NOT_ACCEPTED = frozenset({RATE_LIMITED, SERVICE_UNAVAILABLE, TOO_LARGE})

# openstacksdk's options for keystoneauth's status-code retries (prefixed ones win): all 0.
SDK_RETRY_OPTIONS = (
    "status_code_retries",
    "compute_status_code_retries",
    "image_status_code_retries",
    "identity_status_code_retries",
)
GAVE_UP = "cloudrescue_retries"  # attribute of the answer handed back after retries
_NOVA_OVER_LIMIT = "overLimit"


@dataclass(frozen=True)
class Timing:
    """The side effects of waiting: monotonic clock, wall clock (for an HTTP-date
    ``Retry-After``), sleep, and a random number in [0, 1) for the jitter."""

    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    random: Callable[[], float] = random.random


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long a refused request is tried again (the module's constants)."""

    max_attempts: int = MAX_ATTEMPTS
    max_total_wait: float = MAX_TOTAL_WAIT
    base_delay: float = BASE_DELAY
    max_delay: float = MAX_DELAY
    retry_after_jitter: float = RETRY_AFTER_JITTER

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.max_total_wait < 0 or self.base_delay < 0:
            raise ValueError(f"invalid retry policy: {self}")

    def delay(self, retry: int, retry_after: float | None, chance: float) -> float:
        """Seconds to wait before retry number ``retry`` (0 for the first), given the
        cloud's ``Retry-After`` in seconds (None: it gave none) and ``chance`` in [0, 1)."""
        if retry_after is not None:
            return retry_after + self.retry_after_jitter * chance
        backoff = min(self.max_delay, self.base_delay * 2.0**retry)
        return backoff * (0.5 + 0.5 * chance)


@dataclass(frozen=True)
class GaveUp:
    """Why an answer was handed back although it was one to retry (set on the answer as
    ``GAVE_UP``, for the error message)."""

    attempts: int
    waited: float
    why: str | None = None  # the wait cap that stopped it (None: the attempts were used up)

    def describe(self) -> str:
        tries = "1 attempt" if self.attempts == 1 else f"{self.attempts} attempts"
        said = f"still refused after {tries} over {self.waited:.1f} s"
        return f"{said}: {self.why}" if self.why else said


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """``Retry-After`` in seconds from ``now`` (wall clock): delta-seconds or an HTTP date
    (RFC 9110 10.2.3); None when absent or not understood (then the backoff decides)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # "-0000": an HTTP date is GMT all the same
            when = when.replace(tzinfo=datetime.UTC)
        return max(0.0, when.timestamp() - now)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _nova_over_limit(body: bytes) -> tuple[bool, str]:
    """Whether a 413 body is nova's ``{"overLimit": {...}}``, and its message."""
    try:
        data = json.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError):
        return False, ""
    fault = data.get(_NOVA_OVER_LIMIT) if isinstance(data, dict) else None
    if not isinstance(fault, dict):
        return False, ""
    return True, str(fault.get("message") or "")


def refusal(method: str, status: int, body: bytes) -> str | None:
    """Why this answer means "refused for now, try again" (None: hand it back as it is).

    Only answers that say the cloud did not take the request are retried: 429, 503, and 413
    ``overLimit`` (not a quota, see below). Idempotent requests (GET, HEAD, OPTIONS, PUT,
    DELETE) could be sent again whatever became of the first send; a POST could not, in
    general: nova's actions (``rescue``, ``unrescue``), setting metadata, even asking for a
    token or a console log might be acted on twice. A POST is sent again here only because
    each of these answers says the request was *not accepted* (``NOT_ACCEPTED``): a 429 or a
    413 ``overLimit`` comes from the rate limiter (nova's, or the cloud's gateway in front of
    it), which refuses a request before any handler sees it; a 503 is a proxy with no backend
    to hand it to, or nova refusing service before it casts the action to the compute (it
    answers 202/200 once it did). A 502 or 504 (a proxy that gave up waiting while nova may
    have gone on: the lab's ``api_lost_response``) is not retried, for any method: the rescue
    workflow checks such an answer against the server instead.

    A 413 counts only as nova's ``overLimit`` (a rate limit), and not when its message speaks
    of a quota (old novas answered 413 for an exceeded quota): waiting never frees a quota,
    so it is handed back at once, as a 403 over-quota (or any other 4xx) is.
    """
    if status == RATE_LIMITED:
        why = "rate limited"
    elif status == SERVICE_UNAVAILABLE:
        why = "service unavailable"
    elif status == TOO_LARGE:
        over_limit, message = _nova_over_limit(body)
        if not over_limit or "quota" in message.lower():
            return None
        why = "over limit"
    else:
        return None
    if method.upper() in IDEMPOTENT:
        return why
    return why if status in NOT_ACCEPTED else None  # a POST: see above


class RateLimiter:
    """At most ``rate`` requests a second across every thread (a token bucket of ``burst``
    tokens, full at the start). ``acquire`` reserves a token under the lock and waits for it
    outside, so waiters go in the order they came and none holds the lock while sleeping."""

    def __init__(self, rate: float, *, burst: float = 1.0, timing: Timing | None = None) -> None:
        if not (rate > 0 and math.isfinite(rate)):
            raise ValueError(f"the request rate must be a positive number, not {rate}")
        if burst < 1:
            raise ValueError(f"the burst must be at least one request, not {burst}")
        self.rate = rate
        self.burst = burst
        self._timing = timing or Timing()
        self._lock = threading.Lock()
        self._tokens = burst
        self._updated = self._timing.clock()

    def reserve(self) -> float:
        """Take a token; the seconds to wait before using it (0 when one was there)."""
        with self._lock:
            now = self._timing.clock()
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            self._tokens -= 1.0
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def acquire(self) -> float:
        """Wait for a token; the seconds waited."""
        wait = self.reserve()
        if wait > 0:
            self._timing.sleep(wait)
        return wait


@dataclass(frozen=True)
class Retry:
    """One retry about to be waited for (what ``on_retry`` is told; never a header or body)."""

    method: str
    path: str  # the URL path, without its query
    status: int
    why: str
    delay: float
    attempt: int  # the send that comes next (2 for the first retry)
    max_attempts: int

    def describe(self) -> str:
        return (
            f"HTTP {self.status} ({self.why}) on {self.method} {self.path}: retrying in "
            f"{self.delay:.1f} s (attempt {self.attempt} of {self.max_attempts})"
        )


class PacedAdapter(BaseAdapter):
    """A ``requests`` transport adapter around another one (keystoneauth's keep-alive
    adapter): every send waits for the rate cap, and refused answers are sent again.

    It keeps no state of its own between sends (the limiter has its lock), so one instance
    serves every thread.
    """

    def __init__(
        self,
        inner: BaseAdapter,
        *,
        policy: RetryPolicy | None = None,
        limiter: RateLimiter | None = None,
        timing: Timing | None = None,
        on_retry: Callable[[Retry], None] | None = None,
    ) -> None:
        super().__init__()
        self.inner = inner
        self.policy = policy or RetryPolicy()
        self.limiter = limiter
        self.timing = timing or Timing()
        self.on_retry = on_retry

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, **kwargs: Any
    ) -> requests.Response:
        method = (request.method or "GET").upper()
        path = urlsplit(request.url or "").path
        # A body that is a stream or a file cannot be sent twice (cloudrescue sends none).
        replayable = request.body is None or isinstance(request.body, (bytes, str))
        policy = self.policy
        waited = 0.0
        attempt = 1
        while True:
            if self.limiter is not None:
                self.limiter.acquire()
            response = self.inner.send(request, **kwargs)
            if not replayable or response.status_code not in RETRIED_STATUSES:
                return response
            why = refusal(method, response.status_code, response.content)  # a small error body
            if why is None:
                return response
            if attempt >= policy.max_attempts:
                return _give_up(response, method, path, GaveUp(attempt, waited))
            after = retry_after_seconds(response.headers.get("Retry-After"), self.timing.wall())
            delay = policy.delay(attempt - 1, after, self.timing.random())
            if waited + delay > policy.max_total_wait:
                limit = f"the {policy.max_total_wait:.0f} s cloudrescue waits at most"
                stopped_by = (
                    f"the cloud asks to wait {after:.0f} s, more than {limit}"
                    if after is not None and after > policy.max_total_wait
                    else f"the next wait ({delay:.1f} s) would pass {limit}"
                )
                return _give_up(response, method, path, GaveUp(attempt, waited, stopped_by))
            retry = Retry(
                method, path, response.status_code, why, delay, attempt + 1, policy.max_attempts
            )
            log.info("%s", retry.describe())
            if self.on_retry is not None:
                self.on_retry(retry)
            response.close()
            self.timing.sleep(delay)
            waited += delay
            attempt += 1

    def close(self) -> None:
        self.inner.close()


def _give_up(
    response: requests.Response, method: str, path: str, why: GaveUp
) -> requests.Response:
    log.info("HTTP %d on %s %s: %s", response.status_code, method, path, why.describe())
    setattr(response, GAVE_UP, why)
    return response


def gave_up(response: object) -> GaveUp | None:
    """What ``PacedAdapter`` set on an answer it handed back after retrying, if anything."""
    found = getattr(response, GAVE_UP, None)
    return found if isinstance(found, GaveUp) else None


def install(
    session: requests.Session,
    *,
    policy: RetryPolicy | None = None,
    limiter: RateLimiter | None = None,
    timing: Timing | None = None,
    on_retry: Callable[[Retry], None] | None = None,
) -> None:
    """Wrap every adapter mounted on ``session`` (keystoneauth's ``session.session``) in one
    ``PacedAdapter`` each, sharing ``limiter``; installing twice wraps nothing twice."""
    mounted: Mapping[str, BaseAdapter] = dict(session.adapters)
    for prefix, adapter in mounted.items():
        if isinstance(adapter, PacedAdapter):
            continue
        session.mount(
            prefix,
            PacedAdapter(
                adapter,
                policy=policy or RetryPolicy(),
                limiter=limiter,
                timing=timing or Timing(),
                on_retry=on_retry,
            ),
        )
