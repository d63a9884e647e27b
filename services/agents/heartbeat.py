"""Report that a long task is still running, without cost for short tasks.

The message itself is kept alive by the bus for as long as its handler runs (maestro/consuming.py); these
beats are the events a watcher sees.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

log = logging.getLogger(__name__)


async def _pulse(beat: Callable[[int], Awaitable[None]], every_s: float) -> None:
    beats = 0
    while True:
        beats += 1
        try:
            await beat(beats)
        except Exception as exc:
            log.warning("heartbeat %d failed: %r", beats, exc)
        await asyncio.sleep(every_s)


@asynccontextmanager
async def heartbeats(beat: Callable[[int], Awaitable[None]], *, every_s: float) -> AsyncIterator[None]:
    """While the block runs: `beat(n)` every `every_s` seconds (n = 1, 2, ...), the first after `every_s`.

    Nothing runs for a block shorter than `every_s`: only a timer is armed, and the pulsing task is started
    by that timer, so a fast task costs no extra task.
    """
    loop = asyncio.get_running_loop()
    pulse: asyncio.Task[None] | None = None

    def start() -> None:
        nonlocal pulse
        pulse = loop.create_task(_pulse(beat, every_s))

    timer = loop.call_later(every_s, start)
    try:
        yield
    finally:
        timer.cancel()
        if pulse is not None:
            pulse.cancel()
            await asyncio.wait((pulse,))
