"""Micro-batching on the event loop: requests that arrive together are answered by one call.

A feed request is dominated by fixed per-call costs (a model forward over one short history is mostly Python and
operator dispatch), so under load it pays to run several users through one call. No timer and no wait: a batch
starts on the next turn of the event loop with every request parsed by then, and whatever arrives while it runs
forms the next batch. An idle server therefore answers a lone request at once, and a busy one batches exactly what
queued up while it was busy.

A batch runs in a worker thread, and the event loop first waits for it for at most ``lend_s`` (10 ms). Why wait:
torch and NumPy release the GIL around every operation, so a batch running beside a busy event loop hands the GIL
back and forth hundreds of times per batch. While the loop waits it holds no GIL, so a usual batch runs as if alone.
The lend covers a usual batch: on 2 AMD EPYC cores a batch of 8 feeds took 5-10 ms, so with a 2 ms lend 64% of
the batches outlasted it and one worker served 462 feeds/s against 692 with 10 ms (5 ms: 584; docs/benchmarks.md).
A slow batch (a blocked store read, a big model) stalls the loop for ``lend_s`` at most, then finishes in the
background while the loop serves everything else.

The hand-over is two C-level ``queue.SimpleQueue``s rather than an executor and its ``Future`` (Python-level
conditions): 5,000 lone submits of a batch that does nothing took 84-87 us each through ``ThreadPoolExecutor``
and 66-74 us this way, with 51-55 us of CPU instead of 75 (2 AMD EPYC cores, 2026-12-06). What remains is the
kernel's two wake-ups, the price of never running a batch on the loop. On Linux the batch thread follows the loop
from CPU to CPU: the loop waits while a usual batch runs, so the two never need two CPUs at once, and on one CPU
the hand-over wakes no idle CPU and the batch finds the loop's caches warm. The round trip above fell to 24-25 us
(22-25 us of CPU); a real one-worker server answering 1,500 feeds one at a time at 200/s, eight rounds
alternated with the same server without it, spent a median 2.23 instead of 2.40 ms of CPU a feed and answered in
2.29 instead of 2.50 ms at the median (the code before the refactor, run alongside: 2.16 and 2.23 ms).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

Request = TypeVar("Request")
Result = TypeVar("Result")

logger = logging.getLogger(__name__)


LEND_S = 0.010  # how long the event loop waits for a batch before it goes back to other requests


class MicroBatcher(Generic[Request, Result]):
    """``await submit(request)`` returns ``run([... request ...])``'s answer for it; ``run`` must return one
    result per request, in order. ``run`` blocks (store reads, a model forward), so it runs in one worker thread,
    one batch at a time; the loop waits up to ``lend_s`` for it (see the module's docstring), then keeps accepting
    requests, and those that arrive while a batch runs form the next one. When a batch fails, each request is
    retried alone, so one bad request fails alone.
    """

    def __init__(self, run: Callable[[Sequence[Request]], Sequence[Result]], lend_s: float = LEND_S) -> None:
        self._run = run
        self._lend_s = lend_s
        self._batches: queue.SimpleQueue[list[Request] | None] = queue.SimpleQueue()
        self._answers: queue.SimpleQueue[list[Result | Exception]] = queue.SimpleQueue()
        # Settles who takes a batch's answer once the loop stopped waiting: the answers queue, or a future.
        self._handover = threading.Lock()
        self._late: tuple[asyncio.AbstractEventLoop, asyncio.Future[list[Result | Exception]]] | None = None
        self._worker = threading.Thread(target=self._serve, name="batch", daemon=True)
        self._worker.start()
        self._worker_cpu: int | None = None  # the CPU the batch thread is held to; None: not held
        self._current_cpu = _current_cpu  # None where the batch thread cannot follow the loop
        self._pending: list[tuple[Request, asyncio.Future[Result]]] = []
        self._drainer: asyncio.Task[None] | None = None
        self.sizes: dict[int, int] = {}  # batch size -> batches run: what batching achieved, for tests and tuning
        self.lent: dict[bool, int] = {}  # batches answered within the lend (True) or after the loop moved on

    async def submit(self, request: Request) -> Result:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        self._pending.append((request, future))
        if self._drainer is None or self._drainer.done():
            self._drainer = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        """Run the pending requests batch by batch until none is left. The first batch starts on the next turn of
        the loop, so every request the loop has already parsed joins it; an idle server still answers at once."""
        await asyncio.sleep(0)
        while self._pending:
            batch, self._pending = self._pending, []
            self.sizes[len(batch)] = self.sizes.get(len(batch), 0) + 1
            self._follow_the_loop()
            self._batches.put([request for request, _ in batch])
            try:
                outcomes = self._answers.get(timeout=self._lend_s)  # blocks the loop, holding no GIL, lend_s at most
                self.lent[True] = self.lent.get(True, 0) + 1
            except queue.Empty:
                outcomes = await self._late_answer()
                self.lent[False] = self.lent.get(False, 0) + 1
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if future.done():  # a client that went away cancelled its future
                    continue
                if isinstance(outcome, BaseException):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)

    async def _late_answer(self) -> list[Result | Exception]:
        """The running batch's answer, awaited: the worker hands it to a future instead of the queue."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Result | Exception]] = loop.create_future()
        with self._handover:
            try:
                return self._answers.get_nowait()  # it finished between the timeout and here
            except queue.Empty:
                self._late = (loop, future)
        return await future

    def _follow_the_loop(self) -> None:
        """Hold the batch thread to the CPU this (the loop's) thread is on now (see the module's docstring)."""
        if self._current_cpu is None:
            return
        cpu = self._current_cpu()
        if cpu == self._worker_cpu or cpu < 0 or self._worker.native_id is None:
            return
        try:
            os.sched_setaffinity(self._worker.native_id, {cpu})
            self._worker_cpu = cpu
        except OSError as error:  # a cpuset that changed under us: stop following, the hand-over still works
            logger.warning("the batch thread cannot follow the event loop to CPU %d (%s)", cpu, error)
            self._current_cpu = None

    def close(self) -> None:
        """Let a running batch finish; no new one starts."""
        self._batches.put(None)
        self._worker.join()

    def _serve(self) -> None:
        """The worker thread: answer batches until ``close``."""
        while (requests := self._batches.get()) is not None:
            outcomes = self._answer(requests)
            with self._handover:
                late, self._late = self._late, None
                if late is None:
                    self._answers.put(outcomes)
            if late is not None:
                loop, future = late
                with contextlib.suppress(RuntimeError):  # the loop closed while the batch ran: nobody is left to answer
                    loop.call_soon_threadsafe(_settle, future, outcomes)

    def _answer(self, requests: list[Request]) -> list[Result | Exception]:
        """In the worker thread: the batch's results, or each request's own result or error when the batch fails."""
        try:
            results: list[Result | Exception] = list(self._run(requests))
            if len(results) != len(requests):
                raise ValueError(f"the batch function answered {len(results)} of {len(requests)} requests")
            return results
        except Exception as error:
            if len(requests) == 1:
                return [error]
            logger.warning("a batch of %d requests failed; answering them one by one", len(requests))
            return [outcome for request in requests for outcome in self._answer([request])]


def _settle(future: asyncio.Future[list[Result | Exception]], outcomes: list[Result | Exception]) -> None:
    if not future.done():
        future.set_result(outcomes)


def _cpu_lookup() -> Callable[[], int] | None:
    """libc's ``sched_getcpu`` (a vDSO read, no system call) where the batch thread can be held to a CPU."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).sched_getcpu
    except (AttributeError, OSError):
        return None


_current_cpu = _cpu_lookup()
