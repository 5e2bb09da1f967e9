"""Micro-batching on the event loop: requests that arrive together are answered by one call.

A feed request is dominated by fixed per-call costs (a model forward over one short history is mostly Python and
operator dispatch), so under load it pays to run several users through one call. No timer and no wait: the first
request of a batch schedules the call for the next turn of the event loop, and every request that the loop
parsed in the meantime joins it. An idle server therefore answers a lone request at once, and a busy one batches
exactly what queued up while it was busy.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

Request = TypeVar("Request")
Result = TypeVar("Result")

logger = logging.getLogger(__name__)


class MicroBatcher(Generic[Request, Result]):
    """``await submit(request)`` returns ``run([... request ...])``'s answer for it; ``run`` must return one
    result per request, in order. When a batch fails, each request is retried alone, so one bad request fails
    alone and the others are still answered.
    """

    def __init__(self, run: Callable[[Sequence[Request]], Sequence[Result]]) -> None:
        self._run = run
        self._pending: list[tuple[Request, asyncio.Future[Result]]] = []
        self.sizes: dict[int, int] = {}  # batch size -> batches run: what batching achieved, for tests and tuning

    async def submit(self, request: Request) -> Result:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        self._pending.append((request, future))
        if len(self._pending) == 1:
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        self.sizes[len(batch)] = self.sizes.get(len(batch), 0) + 1
        self._answer(batch)

    def _answer(self, batch: list[tuple[Request, asyncio.Future[Result]]]) -> None:
        try:
            answers = list(zip(batch, self._run([request for request, _ in batch]), strict=True))
        except Exception as error:
            if len(batch) == 1:
                if not batch[0][1].done():  # a client that went away cancelled its future
                    batch[0][1].set_exception(error)
                return
            logger.warning("a batch of %d requests failed; answering them one by one", len(batch))
            for item in batch:
                self._answer([item])
            return
        for (_, future), result in answers:
            if not future.done():
                future.set_result(result)
