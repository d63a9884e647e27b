"""The leader lease on a real nats-server: one holder at a time, a prompt hand-over when the holder stops, a
take-over only after a whole lease without renewal, and a holder that loses the key stops leading."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from maestro import topics
from maestro.bus import Bus
from maestro.lifetime import Lifetime
from services.orchestrator.lease import Lease

LENGTH_S = 0.6


@dataclass
class Replica:
    """A replica running for the lease, which records when it leads."""

    name: str
    lifetime: Lifetime = field(default_factory=Lifetime)
    tenures: list[tuple[float, float | None]] = field(default_factory=list)

    @property
    def leading(self) -> bool:
        return bool(self.tenures) and self.tenures[-1][1] is None

    async def led(self) -> None:
        self.tenures.append((time.monotonic(), None))
        try:
            await self.lifetime.stopped()  # as what an orchestrator leads ends once it stops
        finally:
            self.tenures[-1] = (self.tenures[-1][0], time.monotonic())


@asynccontextmanager
async def running(bus: Bus, name: str) -> AsyncIterator[Replica]:
    replica = Replica(name)
    kv = await bus.js.key_value(topics.BUCKET_LEASES)
    task = asyncio.create_task(
        Lease(kv, topics.LEADER_KEY, name, LENGTH_S, replica.lifetime).run(replica.led)
    )
    try:
        yield replica
    finally:
        replica.lifetime.stop()
        await asyncio.wait_for(task, 5)


async def until(condition: Callable[[], bool], within: float = 5.0) -> None:
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def test_one_of_two_replicas_leads_and_the_other_takes_over_at_once_when_it_stops(bus: Bus) -> None:
    async with running(bus, "a") as a, running(bus, "b") as b:
        await until(lambda: a.leading or b.leading)
        first, second = (a, b) if a.leading else (b, a)
        await asyncio.sleep(LENGTH_S * 2)  # two whole leases: the other never takes the lead meanwhile
        assert (first.leading, second.tenures) == (True, [])
        first.lifetime.stop()  # it gives the lead up as it stops
        stopped_at = time.monotonic()
        await until(lambda: second.leading)
        assert second.tenures[0][0] - stopped_at < LENGTH_S
        assert not first.leading
        assert first.tenures[0][1] is not None and first.tenures[0][1] <= second.tenures[0][0]


async def test_a_lease_left_by_a_killed_holder_is_taken_over_after_a_whole_lease_unrenewed(bus: Bus) -> None:
    kv = await bus.js.key_value(topics.BUCKET_LEASES)
    await kv.create(topics.LEADER_KEY, b"killed")  # held by a replica that will never renew it
    left_at = time.monotonic()
    async with running(bus, "b") as b:
        await until(lambda: b.leading)
        assert b.tenures[0][0] - left_at >= LENGTH_S
        assert (await kv.get(topics.LEADER_KEY)).value == b"b"


async def test_a_replica_restarted_under_the_holder_s_name_takes_the_lease_over_at_once(bus: Bus) -> None:
    kv = await bus.js.key_value(topics.BUCKET_LEASES)
    await kv.create(topics.LEADER_KEY, b"b")  # left by this replica's predecessor, SIGKILLed
    left_at = time.monotonic()
    async with running(bus, "b") as b:
        await until(lambda: b.leading)
        assert b.tenures[0][0] - left_at < LENGTH_S


async def test_a_holder_whose_lease_was_taken_stops_leading(bus: Bus) -> None:
    kv = await bus.js.key_value(topics.BUCKET_LEASES)
    async with running(bus, "a") as a:
        await until(lambda: a.leading)
        await kv.put(
            topics.LEADER_KEY, b"usurper"
        )  # another replica's take-over, as a stalled holder sees it
        await until(lambda: not a.leading, within=LENGTH_S * 2)
        assert (await kv.get(topics.LEADER_KEY)).value == b"usurper"  # and it does not fight back at once
