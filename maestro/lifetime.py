"""How long a bus's consumers and endpoints run (until stop()), and whether it takes work from outside."""

from __future__ import annotations

import asyncio
import contextlib

from maestro.cancels import raise_swallowed_cancel


class Lifetime:
    """The stop every consumer and endpoint of one bus waits on, and the intake a draining mesh closes."""

    def __init__(self) -> None:
        self._stopped = asyncio.Event()
        self._intake_closed = False

    def stop(self) -> None:
        """Stop pulling new messages and answering requests; running handlers finish, consume() returns."""
        self._stopped.set()

    @property
    def stopping(self) -> bool:
        """Whether stop() was called."""
        return self._stopped.is_set()

    def close_intake(self) -> None:
        """Take no new work from outside any more (the mesh is draining); what is under way goes on."""
        self._intake_closed = True

    @property
    def accepting(self) -> bool:
        """Whether new work from outside is taken: not once close_intake() or stop() was called."""
        return not (self._intake_closed or self.stopping)

    @property
    def stop_event(self) -> asyncio.Event:
        """The event stop() sets, for what waits on it itself (the standing pull)."""
        return self._stopped

    async def stopped(self) -> None:
        """Return once stop() was called (or raise the cancel a library swallowed: maestro/cancels.py)."""
        raise_swallowed_cancel()
        await self._stopped.wait()

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds`, or less when stop() is called meanwhile (or raise the cancel a library swallowed,
        as the loops that sleep here would otherwise go on: maestro/cancels.py)."""
        raise_swallowed_cancel()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopped.wait(), seconds)
