"""Which replicas fold events: the leader always; another only once OVERFLOW_PENDING events wait undelivered,
until none does. The orchestrator on a real nats-server, with the leader lease held by a replica that does
not run here."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from nats.js.errors import NotFoundError
from nats.js.kv import KeyValue

from maestro import codec, topics
from maestro.bus import Bus
from maestro.settings import Settings
from proto.v1 import TaskRecord
from services.orchestrator.folding import OVERFLOW_PENDING, folds
from tests.maestro.test_presence import eventually
from tests.services.orchestrator.support import lifecycle, metric, orchestrator


@pytest.mark.parametrize(
    ("leading", "pending", "folding", "expected"),
    [
        (True, None, False, True),  # the leader folds, whatever waits
        (True, 0, False, True),
        (False, 0, False, False),  # the leader keeps up: the others do not fold
        (False, OVERFLOW_PENDING - 1, False, False),
        (False, OVERFLOW_PENDING, False, True),  # the events back up: they fold too
        (False, 1, True, True),  # ... until none waits
        (False, 0, True, False),
        (False, None, True, True),  # unknown: as it was
        (False, None, False, False),
    ],
)
def test_a_replica_folds_when_it_leads_or_the_events_back_up(
    leading: bool, pending: int | None, folding: bool, expected: bool
) -> None:
    assert folds(leading=leading, pending=pending, folding=folding) is expected


async def folding_gauge(port: int) -> float:
    """The replica's maestro_orchestrator_folding (a gauge without labels)."""
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as resp:
        text = await resp.text()
    (line,) = [line for line in text.splitlines() if line.startswith("maestro_orchestrator_folding ")]
    return float(line.split()[1])


async def test_a_replica_that_does_not_lead_folds_once_the_events_back_up_and_stops_when_they_are_gone(
    bus: Bus, records: KeyValue, settings: Settings
) -> None:
    leases = await bus.js.key_value(topics.BUCKET_LEASES)
    await leases.put(topics.LEADER_KEY, b"another-replica")  # alive for the whole test: a 60 s lease
    async with orchestrator(settings.with_(leader_lease_s=60.0)) as port:
        # It does not lead, so it only made the consumer, to count what waits.
        await eventually(lambda: consumer_exists(bus))
        assert await folding_gauge(port) == 0
        # Each task's five events (accepted to succeeded): OVERFLOW_PENDING events and more wait.
        ids = [f"backlog-{n}" for n in range(OVERFLOW_PENDING // 5 + 10)]
        acks = [
            await bus.js.publish_async(topics.EVENTS.subject("acme", task_id), codec.encode(event))
            for task_id in ids
            for event in lifecycle(task_id)
        ]
        await asyncio.gather(*acks)
        # It folds them all, then stops folding once nothing waits.
        await eventually(lambda: applied(port, len(ids) * 5), within=60)
        await eventually(lambda: stopped_folding(port))
        for task_id in (ids[0], ids[-1]):
            entry = await records.get(task_id)
            assert entry.value is not None
            assert codec.decode(TaskRecord, entry.value).state == "succeeded"


async def applied(port: int, count: int) -> bool:
    return await metric(port, "maestro_orchestrator_transitions_total", 'result="applied"') >= count


async def stopped_folding(port: int) -> bool:
    return await folding_gauge(port) == 0


async def consumer_exists(bus: Bus) -> bool:
    try:
        await bus.js.consumer_info(topics.STREAM_EVENTS, topics.DURABLE_ORCHESTRATOR)
    except NotFoundError:
        return False
    return True
