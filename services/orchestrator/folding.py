"""Which orchestrator replicas fold task events into records: the one that leads, always; the others only
while the events back up.

Every replica can fold (they share one durable consumer, and each record write is a compare-and-set that
folds what it missed from the stream first), but replicas that share the events split each task's events
between them: a replica then often writes a record the other has just written, which costs a stream read, a
failed compare-and-set and a second write. Measured with two replicas on one 2-core machine, 3,000 tasks: both
folding, 480 tasks/s at 1.43 ms of orchestrator CPU per task; the leader alone, 900 tasks/s at 0.48 ms (one
replica: 925 tasks/s, 0.45 ms). So the leader folds everything while it keeps up, and the others join
in (overflow) only once OVERFLOW_PENDING events wait undelivered, until the backlog is gone: under a
backlog the extra folding capacity is worth the waste, and an autoscaler that adds replicas on that backlog
(deploy/k8s) gets replicas that help.

Without a leader (one was SIGKILLed: its lease runs out first) the others fold once the events back up, or
once one of them takes the lead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import nats.errors
from nats.js.errors import NotFoundError
from prometheus_client import Gauge

from maestro.bus import Bus
from maestro.deliveries import BatchHandler, Consumer

log = logging.getLogger(__name__)

M = TypeVar("M")

OVERFLOW_PENDING = 1000
"""Events stored and not yet delivered to any replica past which the replicas that do not lead fold too."""
CHECK_S = 1.0
"""How often a replica that does not lead reads how many events wait."""


def folds(*, leading: bool, pending: int | None, folding: bool) -> bool:
    """Whether a replica folds events now: it leads, or the events back up (from OVERFLOW_PENDING waiting
    until none does). `pending` is None when it could not be read: the replica goes on as it was."""
    if leading:
        return True
    if pending is None:
        return folding
    return pending > 0 if folding else pending >= OVERFLOW_PENDING


async def fold_when_needed(
    bus: Bus,
    leading: Callable[[], bool],
    lead_changed: asyncio.Event,
    events: Consumer[M],
    handle: BatchHandler[M],
) -> None:
    """Consume `events` with `handle` while folds() says so, until the bus stops: a consumption stops once
    its `until` is set, after the events it holds are handled. A consumption that fails ends this (the
    service starts again). A replica that does not lead reads the consumer's backlog (made if missing)."""
    gauge = Gauge(
        "maestro_orchestrator_folding",
        "1 while this orchestrator replica folds task events into records (the leader always, the others "
        "while the events back up), else 0",
        registry=bus.metrics.registry,
    )
    folding: asyncio.Task[None] | None = None
    until = asyncio.Event()
    try:
        while not bus.lifetime.stopping:
            lead_changed.clear()
            running = folding is not None and not folding.done()
            if folding is not None and folding.done():
                folding.result()  # a failure ends the service (NATS gone: it starts again)
            leads = leading()
            pending = None if leads else await _pending(bus, events)
            wanted = folds(leading=leads, pending=pending, folding=running)
            if wanted and not running:
                until = asyncio.Event()
                folding = asyncio.create_task(
                    bus.consumers.consume_batches(events, handle, until=until), name="folding"
                )
                gauge.set(1)
                log.info("folding task events (%s)", "leading" if leads else f"{pending} events wait")
            elif running and not wanted:
                until.set()
                assert folding is not None
                await folding
                folding = None
                gauge.set(0)
                log.info("no longer folding task events: the leader keeps up")
            await _first_of(lead_changed.wait(), bus.lifetime.stopped(), folding, timeout=CHECK_S)
    finally:
        until.set()
        if folding is not None:
            await folding


async def _first_of(
    changed: Awaitable[object], stopped: Awaitable[None], folding: asyncio.Task[None] | None, timeout: float
) -> None:
    """Wait until the lead changes, the bus stops, the fold ends (it failed) or `timeout` passes."""
    waits = [asyncio.ensure_future(changed), asyncio.ensure_future(stopped)]
    await asyncio.wait(
        [*waits, *([folding] if folding is not None else [])],
        timeout=timeout,
        return_when=asyncio.FIRST_COMPLETED,
    )
    for waiting in waits:
        waiting.cancel()


async def _pending(bus: Bus, events: Consumer[M]) -> int | None:
    """Events stored and not yet delivered to the orchestrators' consumer; None when it cannot be read."""
    try:
        try:
            info = await bus.js.consumer_info(events.stream, events.durable)
        except NotFoundError:
            # No replica made it yet (the leader of a fresh mesh died before it folded): make it, or nothing
            # would ever count the events that wait.
            await bus.consumers.ensure(events)
            info = await bus.js.consumer_info(events.stream, events.durable)
    except (nats.errors.Error, TimeoutError) as exc:
        log.warning("could not read how many events wait (%r)", exc)
        return None
    return info.num_pending or 0
