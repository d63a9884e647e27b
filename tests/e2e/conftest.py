"""The whole mesh in this process (guard, budget, orchestrator, agents) on a real nats-server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import TypeVar

import pytest

from maestro.client import Client, open_client
from maestro.errors import NotFound, RemoteError
from maestro.presence import roles_without_worker
from maestro.runtime import running_service
from maestro.settings import Settings
from proto.v1 import TaskRecord
from services.agents.service import SERVICE as AGENTS
from services.agents.service import served_roles
from services.budget.service import SERVICE as BUDGET
from services.guard.service import SERVICE as GUARD
from services.orchestrator.service import SERVICE as ORCHESTRATOR

T = TypeVar("T")


async def in_state(client: Client, task_id: str, state: str, within: float = 20.0) -> TaskRecord:
    """Wait until the task's record is in `state` (what `maestro status` would show); its record."""
    async with asyncio.timeout(within):
        while True:
            try:
                record = await client.get(task_id)
                if record.state == state:
                    return record
            except NotFound:
                pass
            await asyncio.sleep(0.02)


async def recorded(ask: Callable[[], Awaitable[T]], until: Callable[[T], bool], within: float = 5.0) -> T:
    """Ask until the answer shows what `until` looks for, and return that answer: for what reads the task
    records (listings, the inbox, the deploy gate), which lag the task's events by up to
    MAESTRO_RECORD_LINGER_S while a task's first events wait to be written together."""
    async with asyncio.timeout(within):
        while not until(answer := await ask()):  # noqa: ASYNC110 (a read of the records, not an event)
            await asyncio.sleep(0.05)
    return answer


async def wait_for_budget(client: Client, within: float = 10.0) -> None:
    """Until the budget service answers, so the first tasks are not held back by a retry."""
    async with asyncio.timeout(within):
        while True:
            try:
                await client.ledger("probe")
                return
            except RemoteError:
                await asyncio.sleep(0.05)


async def wait_for_agents(client: Client, within: float = 15.0) -> None:
    """Until the agents announce every role they serve: running_service returns before they do, and on a
    loaded machine a first task could otherwise be answered with the warning that no agent serves its role."""
    roles = served_roles(client.bus.settings.roles)
    await recorded(lambda: roles_without_worker(client.bus, roles), lambda unserved: not unserved, within)


async def open_mesh(settings: Settings, stack: AsyncExitStack) -> Client:
    for service in (BUDGET, ORCHESTRATOR, AGENTS, GUARD):
        await stack.enter_async_context(running_service(service, settings))
    client = await stack.enter_async_context(open_client(settings))
    await wait_for_budget(client)
    await wait_for_agents(client)
    return client


@pytest.fixture
async def mesh(settings: Settings) -> AsyncIterator[Client]:
    """A client on a running mesh."""
    async with AsyncExitStack() as stack:
        yield await open_mesh(settings, stack)
