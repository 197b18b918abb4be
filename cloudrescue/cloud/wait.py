"""Waiting for an instance to reach a state, tolerating passing API failures."""

from __future__ import annotations

import time
from collections.abc import Callable

from cloudrescue.cloud.base import CloudBackend, ServerInfo
from cloudrescue.errors import CloudError, CloudTimeoutError, NotFoundError
from cloudrescue.events import Events


def wait_for_status(
    backend: CloudBackend,
    server_id: str,
    targets: frozenset[str],
    *,
    timeout: float,
    events: Events,
    interval: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> ServerInfo:
    """Poll until the server's status is in ``targets`` with no task running.

    API errors while polling are retried until ``timeout`` (a 5xx or a stall must not end the
    job); ``ERROR`` status or the server vanishing end it at once.
    """
    started = clock()
    last_error: CloudError | None = None
    wanted = "/".join(sorted(targets))
    while True:
        elapsed = clock() - started
        try:
            server = backend.get_server(server_id)
        except NotFoundError:
            raise
        except CloudError as error:
            last_error = error
        else:
            last_error = None
            events.poll(server, elapsed)
            if server.status in targets and not server.task_state:
                return server
            if server.status == "ERROR":
                raise CloudError(f"instance {server.name} went to ERROR while waiting for {wanted}")
        if elapsed > timeout:
            detail = f" (last API error: {last_error.message})" if last_error else ""
            raise CloudTimeoutError(
                f"instance {server_id} did not reach {wanted} within {timeout:.0f} s{detail}"
            )
        sleep(interval)
