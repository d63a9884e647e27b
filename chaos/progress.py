"""Waiting for a scenario's progress: until a count it keeps reaches a mark, woken each time it changes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def reached(changed: asyncio.Event, done: Callable[[], bool], within: float) -> bool:
    """Wait until `done()` holds, looking again each time `changed` is set; whether it held within `within`
    seconds."""
    try:
        async with asyncio.timeout(within):
            while not done():
                changed.clear()
                await changed.wait()
    except TimeoutError:
        return False
    return True
