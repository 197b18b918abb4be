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
from collections.abc import Callable, Mapping

from cloudrescue.cloud.base import CloudBackend, ImageInfo, RescueStarted, ServerInfo
from cloudrescue.errors import CloudRescueError

DEFAULT_INTERVAL = 0.5  # a worker polls each second: it waits at most this for a listing


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
        self._backend = backend
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
        return self._backend.cloud_name

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
            snapshot = {server.id: server for server in self._backend.list_servers()}
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
        return found if found is not None else self._backend.get_server(server_id)

    def find_server(self, name_or_id: str) -> ServerInfo:
        return self._backend.find_server(name_or_id)

    def list_servers(
        self,
        *,
        name_regex: str | None = None,
        tags: tuple[str, ...] = (),
        any_tags: tuple[str, ...] = (),
        not_any_tags: tuple[str, ...] = (),
        statuses: tuple[str, ...] = (),
    ) -> list[ServerInfo]:
        return self._backend.list_servers(
            name_regex=name_regex,
            tags=tags,
            any_tags=any_tags,
            not_any_tags=not_any_tags,
            statuses=statuses,
        )

    def find_image(self, name_or_id: str) -> ImageInfo:
        return self._backend.find_image(name_or_id)

    def rescue(
        self, server: ServerInfo, *, admin_password: str, image: ImageInfo | None
    ) -> RescueStarted:
        return self._backend.rescue(server, admin_password=admin_password, image=image)

    def unrescue(self, server_id: str) -> None:
        self._backend.unrescue(server_id)

    def console_output(self, server_id: str, length: int | None = None) -> str:
        return self._backend.console_output(server_id, length)

    def console_url(self, server_id: str, console_type: str = "novnc") -> str:
        return self._backend.console_url(server_id, console_type)

    def set_marks(self, server_id: str, marks: Mapping[str, str]) -> None:
        self._backend.set_marks(server_id, marks)

    def clear_marks(self, server_id: str, keys: tuple[str, ...]) -> None:
        self._backend.clear_marks(server_id, keys)
