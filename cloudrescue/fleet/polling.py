"""One poll of ``GET /servers/detail`` for every worker of a fleet run.

Each worker waits for its instance as a single run does (``cloud.wait.wait_for_status``,
``RescueWorkflow``: ``get_server`` about once a second). Behind ``SharedPolling`` those calls
are answered from one listing of the project's servers, made at most every ``interval``
seconds (0.5) for all of them: 50 instances waiting cost two paginated
``GET /servers/detail`` a second, not 50 ``GET /servers/{id}``. The interval is short because
a wait's latency matters: the rescue's host keys are only taken from the console after the
instance is seen in RESCUE (``rescue.py``), and a worker that sees it late may miss its block.

A caller never gets a state older than its call: ``get_server`` returns the first listing
*started after* it was called, waiting for it if need be (listings are numbered; one already
under way when the call comes is not enough). So a worker that just asked for a rescue sees
what the cloud answers after that request, never a listing from before it. A server the
listing does not show (deleted, or of another project) is asked for directly, so
``NotFoundError`` means what it means for a single run. Everything else passes through to
the backend.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, overload

from cloudrescue.cloud.base import CloudBackend, ServerInfo
from cloudrescue.errors import CloudRescueError

DEFAULT_INTERVAL = 0.5  # a worker polls each second: it waits at most this for a listing

P = ParamSpec("P")
R = TypeVar("R")


class _Forwarded(Generic[P, R]):
    """A ``SharedPolling`` method that is its backend's own: ``_Forwarded(CloudBackend.rescue)``
    reads as the backend's ``rescue``, typed as the interface declares it, so mypy checks its
    calls, and that ``SharedPolling`` still is a ``CloudBackend`` (a method forwarded under
    another's name would not be)."""

    def __init__(self, method: Callable[Concatenate[CloudBackend, P], R]) -> None:
        self._name = method.__name__

    @overload
    def __get__(self, instance: None, owner: type[Any]) -> _Forwarded[P, R]: ...

    @overload
    def __get__(self, instance: SharedPolling, owner: type[Any]) -> Callable[P, R]: ...

    def __get__(
        self, instance: SharedPolling | None, owner: type[Any]
    ) -> _Forwarded[P, R] | Callable[P, R]:
        if instance is None:
            return self
        method: Callable[P, R] = getattr(instance.backend, self._name)
        return method


class SharedPolling:
    """A ``CloudBackend`` whose ``get_server`` is served by shared listings (thread-safe)."""

    def __init__(
        self,
        backend: CloudBackend,
        *,
        interval: float = DEFAULT_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.backend = backend  # what every call but ``get_server`` goes to, as it is
        self._interval = interval
        self._clock = clock
        self._sleep = sleep
        self._changed = threading.Condition()
        self._snapshot: dict[str, ServerInfo] = {}
        self._generation = 0  # listings completed (answered or failed)
        self._error: CloudRescueError | None = None  # what the last listing raised
        self._fetching = False  # a thread is making the next listing (maybe waiting its turn)
        self._requested = False  # ... and has sent its request
        self._last_fetch = float("-inf")
        self.listings = 0  # how many listings were made (the benchmark counts them)

    @property
    def cloud_name(self) -> str:
        return self.backend.cloud_name

    def _fetch(self) -> None:
        """Make one listing (this thread was chosen), no sooner than ``interval`` after the
        last one, and hand it to every waiter."""
        wait = self._last_fetch + self._interval - self._clock()
        if wait > 0:
            self._sleep(wait)  # callers arriving meanwhile are served by this listing
        with self._changed:
            self._requested = True
        started = self._clock()
        snapshot: dict[str, ServerInfo] | None = None
        error: CloudRescueError | None = None
        try:
            snapshot = {server.id: server for server in self.backend.list_servers()}
        except CloudRescueError as failure:
            error = failure
        finally:
            with self._changed:
                self.listings += 1
                self._last_fetch = started
                if snapshot is not None or error is not None:  # else a bug: it propagates
                    self._generation += 1
                    self._error = error
                    self._snapshot = snapshot if snapshot is not None else self._snapshot
                self._fetching = self._requested = False
                self._changed.notify_all()

    def get_server(self, server_id: str) -> ServerInfo:
        """The server's state from the first listing started after this call."""
        with self._changed:
            # a listing already asked for may not show what was done before this call: the
            # one after it, then (one still waiting for its turn will do)
            needed = self._generation + (2 if self._requested else 1)
        while True:
            with self._changed:
                while self._fetching and self._generation < needed:
                    self._changed.wait()
                if self._generation >= needed:
                    if self._error is not None:
                        raise self._error
                    found = self._snapshot.get(server_id)
                    break
                self._fetching = True  # this thread makes the next listing
            self._fetch()
        return found if found is not None else self.backend.get_server(server_id)

    # everything else is the backend's own, with the interface's signatures
    find_server = _Forwarded(CloudBackend.find_server)
    list_servers = _Forwarded(CloudBackend.list_servers)
    find_image = _Forwarded(CloudBackend.find_image)
    rescue = _Forwarded(CloudBackend.rescue)
    unrescue = _Forwarded(CloudBackend.unrescue)
    console_output = _Forwarded(CloudBackend.console_output)
    console_url = _Forwarded(CloudBackend.console_url)
    set_marks = _Forwarded(CloudBackend.set_marks)
    clear_marks = _Forwarded(CloudBackend.clear_marks)
