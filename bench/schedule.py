"""The offered rate's schedule, shared by every benchmark that offers work at a fixed rate."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator


async def on_schedule(rate: float, count: int) -> AsyncIterator[int]:
    """Yield 0 .. count-1, each no earlier than its time on a schedule of `rate` per second that starts now;
    one that is late (the caller took longer) goes at once, and the schedule does not move."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    for i in range(count):
        delay = start + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)  # the offered rate's schedule, not a wait for something
        yield i
