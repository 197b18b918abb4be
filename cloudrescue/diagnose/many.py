"""``fleet diagnose``: the no-rescue diagnosis of many instances, and a count per cause.

Each instance is diagnosed by ``one`` (``engine.diagnose`` with the command's options, the
instance given by ID), several at a time (``workers`` threads: most of a diagnosis is waiting
on the console read and the probes); an instance whose diagnosis fails is reported with its
error, the others go on. Nothing is rescued, nothing changes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from cloudrescue.cloud.base import ServerInfo
from cloudrescue.diagnose.engine import Diagnosis
from cloudrescue.errors import CloudRescueError

HEALTHY = "no problem found"


@dataclass(frozen=True)
class Diagnosed:
    """One instance of the fleet: its diagnosis, or the error that stopped it."""

    server: ServerInfo
    diagnosis: Diagnosis | None
    error: CloudRescueError | None = None

    @property
    def cause(self) -> str:
        """The top finding's cause, ``no problem found``, or ``diagnosis failed``."""
        if self.diagnosis is None:
            return "diagnosis failed"
        top = self.diagnosis.top
        return HEALTHY if top is None else top.cause


def diagnose_many(
    servers: Sequence[ServerInfo],
    one: Callable[[ServerInfo], Diagnosis],
    *,
    workers: int = 8,
) -> list[Diagnosed]:
    """Every server diagnosed by ``one``, in the order given."""

    def attempt(server: ServerInfo) -> Diagnosed:
        try:
            return Diagnosed(server, one(server))
        except CloudRescueError as error:
            return Diagnosed(server, None, error)

    if workers <= 1 or len(servers) <= 1:
        return [attempt(server) for server in servers]
    with ThreadPoolExecutor(min(workers, len(servers))) as pool:
        return list(pool.map(attempt, servers))


def count_causes(results: Sequence[Diagnosed]) -> list[tuple[str, str | None, int]]:
    """``(cause, playbook, count)`` per top cause, the most frequent first (then by cause)."""
    counts: Counter[tuple[str, str | None]] = Counter()
    for item in results:
        top = item.diagnosis.top if item.diagnosis is not None else None
        counts[(item.cause, top.playbook if top is not None else None)] += 1
    return sorted(
        ((cause, playbook, count) for (cause, playbook), count in counts.items()),
        key=lambda row: (-row[2], row[0]),
    )
