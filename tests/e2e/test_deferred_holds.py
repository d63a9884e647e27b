"""A tenant whose ledger holds as many open reservations as it has room for (a backlog of its own tasks
holds them all) through the whole mesh: its new tasks queue without a hold, which the dispatcher makes when
their turn comes, so the guard never stalls on them and other tenants are not held up."""

from __future__ import annotations

import asyncio
import contextlib
import time
from contextlib import AsyncExitStack

from nats.js.errors import NotFoundError

from maestro import codec, topics
from maestro.bus import Bus
from maestro.client import Client
from maestro.pricing import PriceTable
from maestro.settings import Settings
from proto.v1 import Failed, Queued, Release, Reserve, SetBudget, TaskAssignment, reservation_id_for
from services.budget import ledger
from services.budget.ledger import Ledger
from tests.e2e.test_fair_dispatch import open_parts, planner, submit_all


async def fill_ledger(bus: Bus, tenant: str) -> None:
    """Store the tenant's ledger as the budget writes it with every open hold it can keep (of 1 micro-USD
    each, for tasks `held-<n>`), rather than by 4,096 round trips."""
    holds = [
        Reserve(tenant=tenant, task_id=f"held-{n}", estimate_micro_usd=1, ttl_s=600)
        for n in range(ledger.MAX_HOLDS)
    ]
    full = ledger.apply(Ledger(tenant=tenant, limit_micro_usd=10**9), holds, time.time(), PriceTable({}))
    kv = await bus.js.key_value(topics.BUCKET_BUDGET)
    await kv.put(tenant, codec.encode(full.ledger))


async def release_held(client: Client, tenant: str, count: int) -> None:
    for n in range(count):
        rid = reservation_id_for(f"held-{n}")
        await client.bus.calls.request(
            topics.BUDGET_RELEASE, Release(tenant=tenant, reservation_id=rid), key=tenant
        )


async def waiting_assignment(bus: Bus, task_id: str) -> tuple[TaskAssignment, dict[str, str]]:
    """The task's assignment as the guard stored it in the waiting stream, with its headers."""
    state = (await bus.js.stream_info(topics.STREAM_WAITING)).state
    for seq in range(state.first_seq, state.last_seq + 1):
        with contextlib.suppress(NotFoundError):
            message = await bus.js.get_msg(topics.STREAM_WAITING, seq)
            assignment = codec.decode(TaskAssignment, message.data or b"")
            if assignment.request.id == task_id:
                return assignment, dict(message.headers or {})
    raise AssertionError(f"{task_id} is not in the waiting stream")


def all_start(reasons: dict[str, str], prefix: str, count: int) -> bool:
    return len(reasons) == count and all(why.startswith(prefix) for why in reasons.values())


async def test_a_tenant_with_no_room_for_holds_queues_its_tasks_and_runs_them_once_there_is(
    bus: Bus, settings: Settings
) -> None:
    await fill_ledger(bus, "full")
    async with AsyncExitStack() as stack:
        client = await open_parts(settings, stack)
        full = [planner("full", n) for n in range(2)]
        calm = [planner("calm", n) for n in range(3)]
        await submit_all(client, [*full, *calm])
        # The other tenant's tasks run at once: nothing waits on the full ledger.
        records = await asyncio.gather(*(client.wait(r.id, timeout=20) for r in calm))
        assert {r.state for r in records} == {"succeeded"}
        # The full tenant's tasks are queued, naming the hold the dispatcher is to make, and wait for room.
        # (Between two tries a task is back in the queue, waiting for its turn.)
        no_room = "waiting for room for its hold: tenant full has 4096 open reservations"
        async with asyncio.timeout(20):
            while not all_start(await client.waits([r.id for r in full]), no_room, 2):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        for request in full:
            queued = [e for e in await client.events(request.id) if isinstance(e, Queued)]
            assert queued[0].reservation_id == reservation_id_for(request.id)
            assignment, headers = await waiting_assignment(client.bus, request.id)
            assert assignment.deferred is not None and assignment.deferred.task_id == request.id
            assert headers.get(topics.HEADER_DEFERRED_HOLD) == "1"
        assert (await client.ledger("full")).holds == ledger.MAX_HOLDS
        # One hold given back is room for one task at a time: both run, each held then charged.
        await release_held(client, "full", 1)
        records = await asyncio.gather(*(client.wait(r.id, timeout=20) for r in full))
        assert {r.state for r in records} == {"succeeded"}
        assert all(r.cost_micro_usd > 0 for r in records)
        view = await client.ledger("full")
        assert view.holds == ledger.MAX_HOLDS - 1
        assert view.spent_micro_usd == sum(r.cost_micro_usd for r in records)


async def test_a_deferred_hold_the_money_no_longer_covers_fails_the_task_for_budget(
    bus: Bus, settings: Settings
) -> None:
    await fill_ledger(bus, "broke")
    async with AsyncExitStack() as stack:
        client = await open_parts(settings, stack)
        request = planner("broke", 0)
        await client.submit(request)
        async with asyncio.timeout(20):
            while request.id not in await client.waits([request.id]):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        # Room comes back, but the money went meanwhile: what is held is now all the limit allows.
        await client.bus.calls.request(
            topics.BUDGET_SET,
            SetBudget(tenant="broke", limit_micro_usd=ledger.MAX_HOLDS),
            key="broke",
        )
        await release_held(client, "broke", 1)
        record = await client.wait(request.id, timeout=20)
        assert record.state == "failed"
        failed = [e for e in await client.events(request.id) if isinstance(e, Failed)]
        assert failed[0].failure == "budget" and "budget" in failed[0].error
        assert (await client.ledger("broke")).holds == ledger.MAX_HOLDS - 1
        # It is gone from the waiting stream: a restarted dispatcher would not find it again.
        info = await client.bus.js.stream_info(topics.STREAM_WAITING, subjects_filter=topics.WAITING.all)
        assert not info.state.subjects
