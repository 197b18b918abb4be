"""One poll of ``GET /servers/detail`` for every worker of a fleet run.

Each worker waits for its instance as a single run does (``cloud.wait.wait_for_status``,
``RescueWorkflow``: ``get_server`` about once a second). Behind ``SharedPolling`` those calls
are answered from one listing of the project's servers, made at most every ``interval``
seconds (0.5) for all of them: 50 instances waiting cost two paginated
``GET /servers/detail`` a second, not 50 ``GET /servers/{id}``. The interval is short because
a wait's latency matters: the rescue's host keys are only taken from the console after the
instance is seen in RESCUE (``rescue.py``), and a worker that sees it late may miss its block.

A caller never gets a state from before its instance's last rescue or unrescue request
(made through this object: the listing that answers it *started after* the request), nor one
more than ``interval`` older than its call: a listing that ended less than ``interval`` ago
answers at once, else the caller waits for the next one (listings are numbered; one already
under way when the call comes is not enough). So a worker that just asked for a rescue sees
what the cloud answers after that request, and a worker polling for RESCUE sees it as soon as
any listing shows it (within its own poll), not one listing later: the rescue prints its host
keys a few seconds after RESCUE, and the console baseline must come before them. A server the
listing does not show (deleted, or of another project) is asked for directly, so
``NotFoundError`` means what it means for a single run. Everything else passes through to
the backend.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, overload

from cloudrescue.cloud.base import (
    CloudBackend,
    ImageInfo,
    RescueStarted,
    ServerInfo,
    keeps_marks,
)
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
        self._last_answer = float("-inf")  # when the last listing was answered
        self._after_action: dict[str, int] = {}  # server id -> the listing its state needs
        self.listings = 0  # how many listings were made (the benchmark counts them)

    @property
    def cloud_name(self) -> str:
        return self.backend.cloud_name

    @property
    def announces_host_keys(self) -> bool:
        return self.backend.announces_host_keys

    @property
    def keeps_marks(self) -> bool:
        """Whether the backend keeps cloudrescue's marks (``cloud.base.keeps_marks``): a fleet
        resume of VPS runs trusts the journal as a single resume does."""
        return keeps_marks(self.backend)

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
                    self._last_answer = self._clock()
                    self._error = error
                    self._snapshot = snapshot if snapshot is not None else self._snapshot
                self._fetching = self._requested = False
                self._changed.notify_all()

    def _next_listing(self) -> int:
        """The number of the first listing that starts from now on (hold ``_changed``): a
        listing already asked for may not show what was done before, so the one after it
        (one still waiting for its turn will do)."""
        return self._generation + (2 if self._requested else 1)

    def get_server(self, server_id: str) -> ServerInfo:
        """The server's state: from a listing started after its last rescue or unrescue
        request, answered less than ``interval`` ago (or the next one)."""
        with self._changed:
            after_action = self._after_action.get(server_id, 0)
            recent = self._clock() - self._last_answer < self._interval
            if recent and self._generation >= after_action and self._error is None:
                found = self._snapshot.get(server_id)
                if found is not None:
                    return found
            needed = max(after_action, self._next_listing())
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

    def rescue(
        self, server: ServerInfo, *, admin_password: str, image: ImageInfo | None
    ) -> RescueStarted:
        """The backend's ``rescue``; the server's state is then taken from later listings."""
        with self._changed:
            self._after_action[server.id] = self._next_listing()
        return self.backend.rescue(server, admin_password=admin_password, image=image)

    def unrescue(self, server_id: str) -> None:
        """The backend's ``unrescue``; the server's state is then taken from later listings."""
        with self._changed:
            self._after_action[server_id] = self._next_listing()
        self.backend.unrescue(server_id)

    # everything else is the backend's own, with the interface's signatures
    find_server = _Forwarded(CloudBackend.find_server)
    list_servers = _Forwarded(CloudBackend.list_servers)
    find_image = _Forwarded(CloudBackend.find_image)
    console_output = _Forwarded(CloudBackend.console_output)
    console_url = _Forwarded(CloudBackend.console_url)
    set_marks = _Forwarded(CloudBackend.set_marks)
    clear_marks = _Forwarded(CloudBackend.clear_marks)
