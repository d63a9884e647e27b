"""Group work per key: items for one key are handled in arrival order, several at a time when they pile up,
and, with a linger, after waiting a bounded time for more of them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from maestro.deadlines import FifoDeadlines

T = TypeVar("T")

Outcome = BaseException | None
"""What became of one item: None when it was handled, else the exception its submitter raises."""


class KeyedBatches(Generic[T]):
    """Runs `process(key, items)` for one key at a time; items that arrive meanwhile form the next batch.

    A key with items gets one task that processes its batches until it has none left, so a hot key (a task
    whose events arrive together) is written once per batch instead of once per item.

    With `linger_s`, a batch waits that long for more items of its key before it is processed, unless
    one of its items is `urgent`: a task whose events come a few milliseconds apart is then written once
    for all of them, and no item waits longer than `linger_s` (plus the batch before it).

    With `patient`, a batch whose items are all patient (a task's events from before it starts) waits up to
    `patient_linger_s` instead, while fewer than `max_patient` batches do (each holds its items, and their
    messages stay unacknowledged); an item that is neither patient nor urgent cuts the wait to `linger_s`
    from its arrival.
    """

    def __init__(
        self,
        process: Callable[[str, list[T]], Awaitable[list[Outcome]]],
        *,
        linger_s: float = 0.0,
        urgent: Callable[[T], bool] | None = None,
        patient: Callable[[T], bool] | None = None,
        patient_linger_s: float = 0.0,
        max_patient: int = 0,
    ) -> None:
        self._process = process
        self._queues: dict[str, list[tuple[T, asyncio.Future[None]]]] = {}
        self._linger_s = linger_s
        self._urgent = urgent
        self._patient = patient if patient_linger_s > linger_s and max_patient > 0 else None
        self._max_patient = max_patient
        self._lingering: dict[str, asyncio.Event] = {}
        self._patient_keys: set[str] = set()
        """Keys whose batch lingers the patient length now."""
        self._hurried = False
        self._due: FifoDeadlines[asyncio.Event] = FifoDeadlines(
            linger_s, asyncio.Event.set, asyncio.Event.is_set
        )
        self._patient_due: FifoDeadlines[asyncio.Event] = FifoDeadlines(
            patient_linger_s, asyncio.Event.set, asyncio.Event.is_set
        )
        self._runs: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._queues)

    def enqueue(self, key: str, item: T) -> asyncio.Future[None]:
        """Have `item` handled after every item enqueued before it for `key`; the future of its outcome."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        queue = self._queues.get(key)
        if queue is not None:
            queue.append((item, future))
            lingering = self._lingering.get(key)
            if lingering is not None:
                if self._is_urgent(item):
                    lingering.set()
                elif key in self._patient_keys and not self._is_patient(item):
                    self._patient_keys.discard(key)
                    self._due.add(lingering)
            return future
        self._queues[key] = [(item, future)]
        run = loop.create_task(self._run(key))
        self._runs.add(run)
        run.add_done_callback(self._runs.discard)
        return future

    def hurry(self) -> None:
        """End every linger now and linger no more (the process stops: what it holds is written first)."""
        self._hurried = True
        for lingering in self._lingering.values():
            lingering.set()

    async def submit(self, key: str, item: T) -> None:
        """Handle `item` after every item submitted before it for `key`; raises the item's exception."""
        await self.enqueue(key, item)

    async def _run(self, key: str) -> None:
        queue = self._queues[key]
        try:
            while queue:
                if (
                    self._linger_s > 0
                    and not self._hurried
                    and not any(self._is_urgent(queued) for queued, _ in queue)
                ):
                    await self._linger(key, patient=all(self._is_patient(queued) for queued, _ in queue))
                batch = queue[:]
                queue.clear()
                try:
                    outcomes = await self._process(key, [item for item, _ in batch])
                except Exception as exc:
                    _settle(batch, [exc] * len(batch))
                    continue
                _settle(batch, outcomes)
        finally:
            del self._queues[key]
            for _, future in queue:
                future.cancel()

    def _is_urgent(self, item: T) -> bool:
        return self._urgent is None or self._urgent(item)

    def _is_patient(self, item: T) -> bool:
        return self._patient is not None and self._patient(item)

    async def _linger(self, key: str, *, patient: bool) -> None:
        """Wait `linger_s` (`patient_linger_s` for a patient batch, while there is room) for more items of
        `key`, or until an urgent one comes."""
        woken = self._lingering[key] = asyncio.Event()
        if patient and len(self._patient_keys) < self._max_patient:
            self._patient_keys.add(key)
            self._patient_due.add(woken)
        else:
            self._due.add(woken)
        try:
            await woken.wait()
        finally:
            del self._lingering[key]
            self._patient_keys.discard(key)


def _settle(batch: list[tuple[T, asyncio.Future[None]]], outcomes: list[Outcome]) -> None:
    for (_, future), outcome in zip(batch, outcomes, strict=True):
        if future.done():
            continue
        if outcome is None:
            future.set_result(None)
        else:
            future.set_exception(outcome)
