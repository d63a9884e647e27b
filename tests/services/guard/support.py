"""What the guard's service tests share: the guard and the real budget service, running in this process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from prometheus_client import CollectorRegistry

from maestro.runtime import open_bus, running_service
from maestro.settings import Settings
from services.budget.service import SERVICE as BUDGET
from services.guard.service import serve
from tests.services.agents.flow import budget_ready


@asynccontextmanager
async def running_guard(settings: Settings) -> AsyncIterator[CollectorRegistry]:
    """The guard (its metrics on a registry the test reads) and the budget service, in this process."""
    registry = CollectorRegistry()
    async with running_service(BUDGET, settings), open_bus(settings, "maestro-guard", registry) as guard_bus:
        # The guard takes a request the moment it starts: a budget not answering yet would make it retry
        # the request (and judge it twice), which the tests that count decisions do not expect.
        await budget_ready(guard_bus)
        guarding = asyncio.create_task(serve(guard_bus))
        try:
            yield registry
        finally:
            guard_bus.lifetime.stop()
            await asyncio.wait_for(guarding, 10)
