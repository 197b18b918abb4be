"""How a fleet command paces itself (docs/fleet.md, "Batches and concurrency"): pure
arithmetic on counts, checked when the options are read.

* ``--batches 1,5,25%``: the selection is cut into batches, in order; batch *k* has the *k*-th
  size, the last size repeating until every instance has a batch (the final batch takes what
  is left). A size is a count (1 or more) or a whole percentage (1 to 100) of the selection,
  rounded up. No ``--batches``: one batch of everything. A batch starts only once the one
  before it succeeded.
* ``--concurrency N``: at most N instances in flight, with a slow start as TCP's: the limit
  starts at ``--slow-start S`` (1 by default, ``FIRST_LIMIT``) and grows by one with each
  instance that succeeds, up to N (``raised``; a failure never raises it). Each success also
  frees its slot, so every round doubles it: 1, 2, 4 ... up to N (``slow_start``, what
  ``fleet plan`` shows). ``--slow-start N`` turns the ramp off.
"""

from __future__ import annotations

from dataclasses import dataclass

from cloudrescue.errors import InvalidInputError

FIRST_LIMIT = 1  # the slow start's in-flight limit when a run begins, by default


@dataclass(frozen=True)
class BatchSize:
    """One size of ``--batches``: ``value`` instances, or ``value`` % of the selection."""

    value: int
    percent: bool = False

    def of(self, total: int) -> int:
        """The size for a selection of ``total`` instances (a percentage rounded up, >= 1)."""
        return max(1, -(-self.value * total // 100)) if self.percent else self.value


def parse_batches(text: str) -> tuple[BatchSize, ...]:
    """The sizes of a ``--batches`` value (``1,5,25%``); ``InvalidInputError`` when bad."""
    sizes: list[BatchSize] = []
    for word in text.split(","):
        word = word.strip()
        number = word.removesuffix("%")
        percent = word.endswith("%")
        value = int(number) if number.isascii() and number.isdigit() else 0
        if value < 1 or (percent and value > 100):
            raise InvalidInputError(
                f"--batches {text!r}: {word!r} is not a size: expected a count (1 or more) or "
                "a percentage (1% to 100%), e.g. 1,5,25%"
            )
        sizes.append(BatchSize(value, percent))
    return tuple(sizes)


def batch_sizes(total: int, sizes: tuple[BatchSize, ...]) -> list[int]:
    """How many instances each batch of a ``total``-instance selection holds, in order."""
    if not sizes:
        return [total] if total else []
    cut: list[int] = []
    while sum(cut) < total:
        size = sizes[min(len(cut), len(sizes) - 1)].of(total)
        cut.append(min(size, total - sum(cut)))
    return cut


def slow_start(concurrency: int, first: int = FIRST_LIMIT) -> list[int]:
    """The in-flight limit at the start of each round of a run whose instances all succeed and
    take as long: ``first`` (1, by default), doubling, then ``concurrency``.

    The limit itself grows by one per success (``Pacing.raised``), not per round: a round of
    ``L`` instances in flight ends with the limit at ``2 L`` (each success frees its slot and
    adds one), and the new slots are filled as each success comes, not once the round is over.
    """
    steps = [min(first, concurrency)]
    while steps[-1] * 2 < concurrency:
        steps.append(steps[-1] * 2)
    return steps if steps[-1] == concurrency else [*steps, concurrency]


@dataclass(frozen=True)
class Pacing:
    """``--concurrency``, ``--slow-start`` and ``--batches``, checked."""

    concurrency: int
    batches: tuple[BatchSize, ...] = ()
    first: int = FIRST_LIMIT  # the in-flight limit a run starts with

    @classmethod
    def parse(cls, concurrency: int, batches: str | None, first: int = FIRST_LIMIT) -> Pacing:
        """The pacing the options give (``InvalidInputError`` for a bad one). A first limit
        above ``concurrency`` is ``concurrency`` (no ramp)."""
        if concurrency < 1:
            raise InvalidInputError(f"--concurrency {concurrency}: 1 or more")
        if first < 1:
            raise InvalidInputError(f"--slow-start {first}: 1 or more")
        sizes = parse_batches(batches) if batches is not None else ()
        return cls(concurrency, sizes, min(first, concurrency))

    def batch_sizes(self, total: int) -> list[int]:
        """See ``batch_sizes``."""
        return batch_sizes(total, self.batches)

    def raised(self, limit: int) -> int:
        """The in-flight limit after one more instance succeeded: one more, up to
        ``concurrency`` (a failure leaves it as it is)."""
        return min(limit + 1, self.concurrency)

    def slow_start(self) -> list[int]:
        """See ``slow_start``."""
        return slow_start(self.concurrency, self.first)
