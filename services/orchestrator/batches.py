"""Group work per key: items for one key are handled in arrival order, several at a time when they pile up."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")

Outcome = BaseException | None
"""What became of one item: None when it was handled, else the exception its submitter raises."""


class KeyedBatches(Generic[T]):
    """Runs `process(key, items)` for one key at a time; items that arrive meanwhile form the next batch.

    The first submitter for an idle key does the processing, so no background task is needed, and a
    hot key (a task whose events arrive together) is written once per batch instead of once per item.
    """

    def __init__(self, process: Callable[[str, list[T]], Awaitable[list[Outcome]]]) -> None:
        self._process = process
        self._queues: dict[str, list[tuple[T, asyncio.Future[None]]]] = {}

    def __len__(self) -> int:
        return len(self._queues)

    async def submit(self, key: str, item: T) -> None:
        """Handle `item` after every item submitted before it for `key`; raises the item's exception."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._queues.get(key)
        if queue is not None:
            queue.append((item, future))
            return await future
        queue = self._queues[key] = [(item, future)]
        try:
            while queue:
                batch = queue[:]
                queue.clear()
                try:
                    outcomes = await self._process(key, [item for item, _ in batch])
                except BaseException as exc:
                    _settle(batch, [exc] * len(batch))
                    _settle(queue, [exc] * len(queue))
                    raise
                _settle(batch, outcomes)
        finally:
            del self._queues[key]
        return await future


def _settle(batch: list[tuple[T, asyncio.Future[None]]], outcomes: list[Outcome]) -> None:
    for (_, future), outcome in zip(batch, outcomes, strict=True):
        if future.done():
            continue
        if outcome is None:
            future.set_result(None)
        else:
            future.set_exception(outcome)
