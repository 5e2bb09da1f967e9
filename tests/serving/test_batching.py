"""The event-loop micro-batcher: what arrives together runs together, each caller gets its own answer."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence

import pytest

from shoprec.serving.batching import MicroBatcher


class Doubler:
    """Doubles numbers; refuses negative ones, failing any batch that holds one."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []

    def __call__(self, batch: Sequence[int]) -> list[int]:
        self.calls.append(list(batch))
        if any(n < 0 for n in batch):
            raise ValueError(f"negative: {min(batch)}")
        return [2 * n for n in batch]


def test_requests_submitted_together_share_one_call_and_get_their_own_answers() -> None:
    run = Doubler()
    batcher = MicroBatcher(run)

    async def burst() -> list[int]:
        return await asyncio.gather(*(batcher.submit(n) for n in range(5)))

    assert asyncio.run(burst()) == [0, 2, 4, 6, 8]
    assert run.calls == [[0, 1, 2, 3, 4]]
    assert batcher.sizes == {5: 1}


def test_a_lone_request_is_answered_without_waiting_for_company() -> None:
    run = Doubler()
    batcher = MicroBatcher(run)

    async def one_after_another() -> list[int]:
        return [await batcher.submit(n) for n in (3, 4)]

    assert asyncio.run(one_after_another()) == [6, 8]
    assert run.calls == [[3], [4]]


def test_one_bad_request_fails_alone_and_the_rest_of_its_batch_is_answered() -> None:
    run = Doubler()
    batcher = MicroBatcher(run)

    async def burst() -> list[int | BaseException]:
        return await asyncio.gather(*(batcher.submit(n) for n in (1, -7, 2)), return_exceptions=True)

    first, bad, last = asyncio.run(burst())
    assert (first, last) == (2, 4)
    assert isinstance(bad, ValueError) and "negative: -7" in str(bad)
    assert run.calls == [[1, -7, 2], [1], [-7], [2]]


def test_a_run_that_answers_the_wrong_number_of_requests_fails_them_instead_of_hanging() -> None:
    batcher = MicroBatcher[int, int](lambda batch: [])

    async def burst() -> list[int]:
        return await asyncio.wait_for(asyncio.gather(batcher.submit(1), batcher.submit(2)), timeout=5)

    with pytest.raises(ValueError, match="answered 0 of 1 requests"):
        asyncio.run(burst())


def test_a_fast_batch_is_answered_within_the_lend_and_a_slow_one_stalls_the_loop_for_the_lend_at_most() -> None:
    def run(batch: Sequence[float]) -> list[float]:
        time.sleep(max(batch))
        return list(batch)

    batcher = MicroBatcher(run, lend_s=0.05)

    async def slow_batch_and_a_ticker() -> tuple[float, float]:
        gaps: list[float] = []

        async def ticker() -> None:
            last = time.perf_counter()
            while True:
                await asyncio.sleep(0.001)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        assert await batcher.submit(0.0) == 0.0  # fast: the loop waited for it
        ticking = asyncio.create_task(ticker())
        await asyncio.sleep(0.01)
        started = time.perf_counter()
        assert await batcher.submit(0.5) == 0.5
        took = time.perf_counter() - started
        ticking.cancel()
        return took, max(gaps)

    took, longest_gap = asyncio.run(slow_batch_and_a_ticker())
    batcher.close()
    assert took >= 0.5
    assert longest_gap < 0.25, "the loop stalled for the whole slow batch instead of the lend"
    assert batcher.lent == {True: 1, False: 1}


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="CPU affinity is Linux-only")
def test_the_batch_thread_runs_on_the_cpu_the_event_loop_ran_on() -> None:
    """The hand-over then wakes no idle CPU (see the module's docstring)."""
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one CPU: there is nothing to follow")
    batcher = MicroBatcher[int, frozenset[int]](lambda batch: [frozenset(os.sched_getaffinity(0)) for _ in batch])
    allowed = os.sched_getaffinity(0)

    async def twice() -> list[frozenset[int]]:
        return [await batcher.submit(1), await batcher.submit(2)]

    masks = asyncio.run(twice())
    batcher.close()
    for mask in masks:
        assert len(mask) == 1 and mask <= allowed
