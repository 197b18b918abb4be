"""The fleet's pacing arithmetic (issue 10, point 3): ``--batches`` and the slow start of
``--concurrency``, as docs/fleet.md documents them."""

from __future__ import annotations

import pytest

from cloudrescue.errors import InvalidInputError
from cloudrescue.fleet.pacing import (
    FIRST_LIMIT,
    BatchSize,
    Pacing,
    batch_sizes,
    parse_batches,
    slow_start,
)


def sizes(text: str | None, total: int) -> list[int]:
    return Pacing.parse(10, text).batch_sizes(total)


def test_canary_sizes_then_the_last_size_repeats() -> None:
    assert sizes("1,5,25%", 40) == [1, 5, 10, 10, 10, 4]
    assert sizes("1,5", 12) == [1, 5, 5, 1]
    assert sizes("2", 7) == [2, 2, 2, 1]
    assert sizes("1,100", 3) == [1, 2]  # the last batch takes what is left


def test_percentages_are_of_the_selection_rounded_up() -> None:
    assert sizes("25%", 6) == [2, 2, 2]  # 1.5 -> 2
    assert sizes("10%", 3) == [1, 1, 1]  # 0.3 -> 1: never an empty batch
    assert sizes("100%", 5) == [5]
    assert BatchSize(34, percent=True).of(3) == 2  # 1.02 -> 2


def test_no_batches_is_one_batch_of_everything() -> None:
    assert sizes(None, 12) == [12]
    assert batch_sizes(0, ()) == [] and batch_sizes(0, parse_batches("1,5")) == []


def test_slow_start_doubles_up_to_the_concurrency() -> None:
    assert slow_start(10) == [1, 2, 4, 8, 10]
    assert slow_start(8) == [1, 2, 4, 8]
    assert slow_start(1) == [1]
    assert slow_start(3) == [1, 2, 3]
    assert Pacing.parse(5, None).slow_start() == [1, 2, 4, 5]


def test_slow_start_s_is_the_first_limit_and_n_turns_the_ramp_off() -> None:
    assert Pacing.parse(10, None, first=3).slow_start() == [3, 6, 10]
    assert Pacing.parse(10, None, first=10).slow_start() == [10]
    assert Pacing.parse(10, None, first=50) == Pacing(10, (), first=10)  # capped: no ramp
    assert Pacing.parse(4, None).first == FIRST_LIMIT == 1
    with pytest.raises(InvalidInputError, match="--slow-start 0: 1 or more"):
        Pacing.parse(10, None, first=0)


def test_the_limit_grows_by_one_per_success_up_to_the_concurrency() -> None:
    pacing = Pacing(10)
    limit, rounds = FIRST_LIMIT, [FIRST_LIMIT]
    while limit < pacing.concurrency:  # a round: each of the `limit` in flight succeeds
        for _ in range(limit):
            limit = pacing.raised(limit)
        rounds.append(limit)
    assert rounds == pacing.slow_start() == [1, 2, 4, 8, 10]
    assert pacing.raised(10) == 10 and Pacing(1).raised(FIRST_LIMIT) == 1


@pytest.mark.parametrize("text", ["", "0", "1,,5", "-1", "101%", "0%", "%", "a", "5%%", "²"])
def test_bad_batches_are_refused(text: str) -> None:
    with pytest.raises(InvalidInputError, match=f"--batches '{text}': "):
        parse_batches(text)


def test_concurrency_is_at_least_one() -> None:
    with pytest.raises(InvalidInputError, match="--concurrency 0: 1 or more"):
        Pacing.parse(0, None)
