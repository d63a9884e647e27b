"""Helpers for the budget's service tests: start replicas, wait for one to answer, read the budget events."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from maestro import codec, topics
from maestro.bus import Bus
from maestro.errors import RemoteError
from maestro.runtime import running_service
from maestro.settings import Settings
from proto.v1 import BudgetEvents, GetLedger, LedgerView, SpendSampled
from services.budget.service import SERVICE, serve_budget
from services.budget.store import Clock


async def answering(bus: Bus, tenant: str = "acme", within: float = 10.0) -> LedgerView:
    """The tenant's ledger, as soon as a budget replica answers."""
    async with asyncio.timeout(within):
        while True:
            try:
                return await bus.calls.request(topics.BUDGET_GET, GetLedger(tenant=tenant))
            except RemoteError as exc:
                if exc.code != 503:
                    raise
                await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def budget(settings: Settings, bus: Bus, replicas: int = 1) -> AsyncIterator[None]:
    """`replicas` budget services as `python -m services.budget` runs them, answering, for a block."""
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(replicas):
            await stack.enter_async_context(running_service(SERVICE, settings))
        await answering(bus, "probe")
        yield


async def read_budget_events(
    js: JetStreamContext, tenant: str, *, samples: bool = False
) -> list[BudgetEvents]:
    """Every budget event of the tenant stored so far, oldest first; the spend samples only when asked for
    (a replica samples every MAESTRO_BUDGET_SAMPLE_S, a round that may fall in any test)."""
    config = ConsumerConfig(
        ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL, inactive_threshold=10.0, mem_storage=True
    )
    sub = await js.pull_subscribe(
        topics.BUDGET_EVENTS.subject(tenant), stream=topics.STREAM_BUDGET_EVENTS, config=config
    )
    found: list[BudgetEvents] = []
    try:
        pending = (await sub.consumer_info()).num_pending
        while len(found) < pending:
            for msg in await sub.fetch(256, timeout=2.0):
                found.append(codec.decode(BudgetEvents, msg.data))  # type: ignore[arg-type]
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
    return found if samples else [event for event in found if not isinstance(event, SpendSampled)]


async def wait_for_events(
    js: JetStreamContext,
    tenant: str,
    done: Callable[[list[BudgetEvents]], bool],
    within: float = 5.0,
    *,
    samples: bool = False,
) -> list[BudgetEvents]:
    """The tenant's budget events (with the spend samples, when asked for) once `done(events)` holds; raises
    TimeoutError."""
    async with asyncio.timeout(within):
        while True:
            events = await read_budget_events(js, tenant, samples=samples)
            if done(events):
                return events
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def budget_on(bus: Bus, clock: Clock) -> AsyncIterator[None]:
    """One budget replica on `bus` with its own clock, for the length of a block."""
    serving = asyncio.create_task(serve_budget(bus, clock))
    try:
        yield
    finally:
        bus.lifetime.stop()
        await asyncio.wait_for(serving, 10)
