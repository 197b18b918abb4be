"""The metadata marks cloudrescue puts on an instance while it rescues it.

The mark is set before the rescue request and cleared once the instance is back, so an
instance left in rescue by a run that died can be told apart from one rescued by hand, even
from another machine with an empty journal.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from cloudrescue.cloud.base import ServerInfo

MARK_RUN = "cloudrescue:run"
MARK_SINCE = "cloudrescue:since"
MARK_KEYS = (MARK_RUN, MARK_SINCE)


@dataclass(frozen=True)
class RescueMark:
    """Which cloudrescue run rescued the instance, and since when (UTC, ISO 8601)."""

    run_id: str
    since: str | None


def marks_for(run_id: str, now: datetime | None = None) -> dict[str, str]:
    """The metadata items that mark an instance as rescued by run ``run_id``."""
    moment = now or datetime.now(UTC)
    return {MARK_RUN: run_id, MARK_SINCE: moment.isoformat(timespec="seconds")}


def read_mark(server: ServerInfo) -> RescueMark | None:
    """The mark on ``server``, if cloudrescue's run left one."""
    run_id = server.metadata.get(MARK_RUN)
    if not run_id:
        return None
    return RescueMark(run_id, server.metadata.get(MARK_SINCE))
