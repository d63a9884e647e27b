"""Deadlines all the same time ahead, served by one timer: each comes due in order, a settled one never."""

from __future__ import annotations

import asyncio

from maestro.deadlines import FifoDeadlines


async def test_items_come_due_in_order_after_their_delay_and_settled_ones_are_dropped() -> None:
    fired: list[str] = []
    settled: set[str] = set()
    all_due = asyncio.Event()

    def due(item: str) -> None:
        fired.append(item)
        if item == "c":
            all_due.set()

    deadlines: FifoDeadlines[str] = FifoDeadlines(0.05, due, lambda item: item in settled)
    loop = asyncio.get_running_loop()
    began = loop.time()
    deadlines.add("a")
    deadlines.add("b")
    settled.add("a")
    deadlines.prune()
    deadlines.add("c")
    async with asyncio.timeout(2):
        await all_due.wait()
    assert fired == ["b", "c"]
    assert loop.time() - began >= 0.05
    deadlines.add("d")  # the timer is armed again once the queue has emptied
    settled.add("d")
    deadlines.add("e")
    async with asyncio.timeout(2):
        while "e" not in fired:  # noqa: ASYNC110 - `due` is a plain callback: nothing to await on
            await asyncio.sleep(0.01)
    assert fired == ["b", "c", "e"]  # d came due before e, settled: dropped
