"""Group commit: requests that arrive while a flush is running go together in the next one.

Many mailbox tasks each want a small transaction ("mark these 5 as sending", "record these
5 outcomes"). One transaction for all of them costs about what one of them costs, so the
callers share: nobody waits on a timer, and under load batches grow by themselves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

PayloadT = TypeVar("PayloadT")
ResultT = TypeVar("ResultT")


class Coalescer(Generic[PayloadT, ResultT]):
    """Runs `flush` over every payload submitted while the previous flush was running."""

    def __init__(self, flush: Callable[[Sequence[PayloadT]], Awaitable[Sequence[ResultT]]]) -> None:
        self._flush = flush
        self._waiting: list[tuple[PayloadT, asyncio.Future[ResultT]]] = []
        self._draining: asyncio.Task[None] | None = None

    async def submit(self, payload: PayloadT) -> ResultT:
        """Queue `payload`; returns its share of the flush's result (or its exception)."""
        future: asyncio.Future[ResultT] = asyncio.get_running_loop().create_future()
        self._waiting.append((payload, future))
        if self._draining is None or self._draining.done():
            self._draining = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                results = await self._flush([payload for payload, _ in batch])
            except Exception as error:  # every caller of the batch gets the failure
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
