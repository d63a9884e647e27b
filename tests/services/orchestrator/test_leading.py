"""The leader's jobs fed by another replica's news, on a real nats-server: the gauges of open tasks count what
the other replica wrote, in event order, and forget it all when the lead is lost."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from msgspec import structs
from prometheus_client import CollectorRegistry

from maestro.bus import Bus
from maestro.runtime import open_bus
from maestro.settings import Settings
from proto.v1 import Started, Succeeded, TaskRecord
from services.orchestrator.human_queues import HumanQueues
from services.orchestrator.leading import Leadership
from services.orchestrator.running import RunningTasks
from services.orchestrator.store import TaskStore
from tests.services.orchestrator.test_running import record as running_record

T0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def replica(bus: Bus) -> tuple[Leadership, RunningTasks, HumanQueues]:
    running, humans = RunningTasks(), HumanQueues(CollectorRegistry())
    leadership = Leadership(bus, TaskStore(bus), running, humans, dispatching=None, version="1.0.0")
    return leadership, running, humans


@asynccontextmanager
async def leading(leadership: Leadership) -> AsyncIterator[None]:
    task = asyncio.create_task(leadership.lead())
    await until(lambda: leadership.leading)
    try:
        yield
    finally:
        task.cancel()
        await asyncio.wait({task})


async def until(condition: Callable[[], bool], within: float = 5.0) -> None:
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


def record(task_id: str, state: str, seq: int, role: str = "planner") -> TaskRecord:
    return structs.replace(running_record(task_id, state, seq=seq), role=role)


def sample(bus: Bus, what: str) -> float:
    return bus.metrics.registry.get_sample_value("maestro_leader_news_total", {"what": what}) or 0.0


async def test_the_leader_counts_what_another_replica_wrote_and_forgets_it_when_it_stops_leading(
    bus: Bus, settings: Settings
) -> None:
    leader, running, humans = replica(bus)
    async with open_bus(settings, "other-replica") as other, leading(leader):
        follower, follower_running, _ = replica(other)
        follower.written(None, record("t1", "running", seq=3))
        follower.written(None, record("h1", "queued", seq=4, role="human:security"))
        await until(lambda: running.count() == 1 and len(humans.open) == 1)
        follower.heard(Started(task_id="t1", tenant="acme", at=T0, worker="w-1"))
        follower.heard(Succeeded(task_id="t1", tenant="acme", at=T0, worker="w-1"))
        follower.written(record("t1", "running", seq=3), record("t1", "succeeded", seq=5))
        await until(lambda: running.count() == 0)
        # A news of an older record of the same task that comes late changes nothing.
        follower.written(None, record("t1", "running", seq=4))
        leader.written(None, record("t2", "running", seq=9))  # the leader's own write counts at once
        assert running.count() == 1
        await until(lambda: sample(bus, "written") == 4)
        assert running.count() == 1
        assert (sample(bus, "started"), sample(bus, "ended")) == (0.0, 0.0)  # no dispatcher: no news of them
        assert follower_running.count() == 0
        leads = bus.metrics.registry.get_sample_value("maestro_orchestrator_leading")
        follows = other.metrics.registry.get_sample_value("maestro_orchestrator_leading")
        assert (leads, follows) == (1.0, 0.0)
    assert (running.count(), len(humans.open)) == (0, 0)
    assert bus.metrics.registry.get_sample_value("maestro_orchestrator_leading") == 0.0


async def test_a_replica_that_does_not_lead_counts_nothing_itself(bus: Bus) -> None:
    follower, running, humans = replica(bus)
    follower.written(None, record("t1", "running", seq=3))
    await bus.nc.flush()
    assert (running.count(), len(humans.open), sample(bus, "written")) == (0, 0, 0.0)
