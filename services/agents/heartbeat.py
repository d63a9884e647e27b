"""Keep a long task's message alive and report that it is still running, without cost for short tasks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

log = logging.getLogger(__name__)


async def _pulse(
    keepalive: Callable[[], Awaitable[None]],
    beat: Callable[[int], Awaitable[None]],
    tick_s: float,
    every_s: float,
    since: float,
) -> None:
    loop = asyncio.get_running_loop()
    beats = 0
    while True:
        try:
            await keepalive()
        except Exception as exc:
            log.warning("keepalive failed: %r", exc)
        if loop.time() - since >= (beats + 1) * every_s:
            beats += 1
            try:
                await beat(beats)
            except Exception as exc:
                log.warning("heartbeat %d failed: %r", beats, exc)
        await asyncio.sleep(tick_s)


@asynccontextmanager
async def heartbeats(
    keepalive: Callable[[], Awaitable[None]],
    beat: Callable[[int], Awaitable[None]],
    *,
    tick_s: float,
    every_s: float,
) -> AsyncIterator[None]:
    """While the block runs: `keepalive()` every `tick_s`, `beat(n)` every `every_s` (n = 1, 2, ...).

    Nothing runs for a block shorter than `tick_s`: only a timer is armed, and the pulsing task is
    started by that timer, so a fast task costs no extra task.
    """
    loop = asyncio.get_running_loop()
    since = loop.time()
    pulse: asyncio.Task[None] | None = None

    def start() -> None:
        nonlocal pulse
        pulse = loop.create_task(_pulse(keepalive, beat, tick_s, every_s, since))

    timer = loop.call_later(tick_s, start)
    try:
        yield
    finally:
        timer.cancel()
        if pulse is not None:
            pulse.cancel()
            await asyncio.wait((pulse,))
