"""Helpers for the service tests: hand a task to the agents as the guard would, and wait for its events."""

from __future__ import annotations

import asyncio

from maestro import topics
from maestro.bus import Bus
from maestro.errors import RemoteError
from maestro.history import follow_events, read_events
from proto.v1 import (
    AttemptFailed,
    Decision,
    Failed,
    GetLedger,
    LedgerView,
    Reserve,
    Succeeded,
    TaskAssignment,
    TaskEvent,
    TaskRequest,
)

ESTIMATE = 50_000


async def assign(
    bus: Bus, request: TaskRequest, *, reserve: bool = True, attempt: int = 1, queued_seq: int = 0
) -> TaskAssignment:
    """Reserve the estimate with the budget service and queue the task for its role, as the guard does (or
    as the orchestrator hands out a retry, for a later `attempt`); `queued_seq` says where its Queued event
    is stored, as the guard's assignments do."""
    reservation_id = ""
    if reserve:
        reservation = await bus.calls.request(
            topics.BUDGET_RESERVE,
            Reserve(tenant=request.tenant, task_id=request.id, estimate_micro_usd=ESTIMATE),
        )
        assert reservation.granted, reservation.reason
        reservation_id = reservation.reservation_id
    assignment = TaskAssignment(
        request=request,
        decision=Decision(verdict="allow"),
        reservation_id=reservation_id,
        attempt=attempt,
        queued_seq=queued_seq,
    )
    await bus.streams.publish(topics.TASKS.at(request.role, request.tenant), assignment)
    return assignment


async def outcome(bus: Bus, task_id: str, within: float = 10.0) -> list[TaskEvent]:
    """The task's events up to and including its first outcome (succeeded, failed, or an attempt failed)."""
    seen: list[TaskEvent] = []
    async with asyncio.timeout(within):
        async for event in follow_events(bus.js, task_id):
            seen.append(event)
            if isinstance(event, Succeeded | Failed | AttemptFailed):
                return seen
    raise AssertionError("the event feed ended")


async def first_event(bus: Bus, task_id: str, *kinds: type[TaskEvent], within: float = 10.0) -> TaskEvent:
    """The task's first event of one of these kinds."""
    async with asyncio.timeout(within):
        async for event in follow_events(bus.js, task_id):
            if isinstance(event, kinds):
                return event
    raise AssertionError("the event feed ended")


async def drained(bus: Bus, within: float = 20.0) -> None:
    """Until every copy of every task was handled and acked (the work queue is empty)."""
    async with asyncio.timeout(within):
        while (await bus.js.stream_info(topics.STREAM_TASKS)).state.messages:  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def events(bus: Bus, task_id: str) -> list[TaskEvent]:
    """Every event of the task stored so far."""
    return await read_events(bus.js, task_id)


async def ledger(bus: Bus, tenant: str) -> LedgerView:
    """The tenant's ledger as the budget service reports it."""
    return await bus.calls.request(topics.BUDGET_GET, GetLedger(tenant=tenant))


async def budget_ready(bus: Bus, within: float = 10.0) -> None:
    """Wait until the budget service answers."""
    async with asyncio.timeout(within):
        while True:
            try:
                await ledger(bus, "ready-check")
                return
            except RemoteError:
                await asyncio.sleep(0.05)
