"""Deadlines that all lie the same time ahead, so they come due in the order they were set: they wait in a
queue, and one timer, armed at the oldest, serves them all (instead of a timer armed per deadline, which on
uvloop allocates a libuv timer each)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class FifoDeadlines(Generic[T]):
    """Each item added comes due `delay_s` later: `due(item)` runs then, unless `settled(item)` says it no
    longer needs to (it is then only dropped)."""

    def __init__(self, delay_s: float, due: Callable[[T], None], settled: Callable[[T], bool]) -> None:
        self._delay_s = delay_s
        self._due = due
        self._settled = settled
        self._queue: deque[tuple[float, T]] = deque()
        self._timer: asyncio.TimerHandle | None = None

    def add(self, item: T) -> None:
        """Set the item's deadline, `delay_s` from now."""
        loop = asyncio.get_running_loop()
        self._queue.append((loop.time() + self._delay_s, item))
        if self._timer is None:
            self._timer = loop.call_at(self._queue[0][0], self._fire)

    def prune(self) -> None:
        """Drop settled items from the front (keeps the queue short when most settle before their time)."""
        queue = self._queue
        while queue and self._settled(queue[0][1]):
            queue.popleft()

    def _fire(self) -> None:
        loop = asyncio.get_running_loop()
        now, queue = loop.time(), self._queue
        while queue and (queue[0][0] <= now or self._settled(queue[0][1])):
            _, item = queue.popleft()
            if not self._settled(item):
                self._due(item)
        self._timer = loop.call_at(queue[0][0], self._fire) if queue else None
