"""Each tenant's partition is served by one budget replica; one nobody owns falls back to any replica."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import nats.errors
import pytest
from prometheus_client import CollectorRegistry

from maestro import codec, topics
from maestro.bus import Bus
from maestro.runtime import open_bus
from maestro.settings import Settings
from proto.v1 import GetLedger, LedgerView
from services.budget.partitions import Ping, owned_by, owner
from services.budget.service import serve_budget
from services.budget.store import Clock

PARTITIONS = topics.BUDGET_PARTITIONS


def test_every_partition_has_exactly_one_owner_and_the_load_is_even() -> None:
    replicas = {"c-3", "a-1", "b-2"}
    shares = [owned_by(me, replicas, PARTITIONS) for me in sorted(replicas)]
    assert set().union(*shares) == set(range(PARTITIONS))
    assert sum(len(share) for share in shares) == PARTITIONS
    assert max(map(len, shares)) - min(map(len, shares)) <= 1


def test_ownership_does_not_depend_on_the_order_replicas_are_listed_in() -> None:
    for p in range(PARTITIONS):
        assert owner(p, ["b", "a", "c"]) == owner(p, ("c", "b", "a")) == owner(p, {"a", "b", "c"})
    assert owned_by("z", {"a", "b"}, PARTITIONS) == set()  # not (yet) seen alive: serves nothing
    with pytest.raises(ValueError):
        owner(0, [])


def tenant_per_partition() -> dict[int, str]:
    """One tenant name that falls in each partition."""
    found: dict[int, str] = {}
    n = 0
    while len(found) < PARTITIONS:
        found.setdefault(topics.BUDGET_GET.partition(f"t{n}"), f"t{n}")
        n += 1
    return found


@contextlib.asynccontextmanager
async def replica(
    settings: Settings, name: str, clock: Clock = time.time, ping: Ping | None = None
) -> AsyncIterator[Bus]:
    """One in-process budget replica on its own connection and metrics registry."""
    async with open_bus(settings, name, CollectorRegistry()) as bus:
        serving = asyncio.create_task(serve_budget(bus, clock, ping))
        try:
            yield bus
        finally:
            bus.lifetime.stop()
            await asyncio.wait_for(serving, 10)


def answered(bus: Bus) -> float:
    """How many ledger reads this replica has answered."""
    return (
        bus.metrics.registry.get_sample_value("maestro_requests_total", {"endpoint": "get", "code": "200"})
        or 0
    )


async def answerer(client: Bus, replicas: dict[str, Bus], tenant: str, tries: int = 6) -> str | None:
    """The one replica that answered `tries` reads on the tenant's partition subject; None if several did."""
    before = {name: answered(bus) for name, bus in replicas.items()}
    subject = topics.BUDGET_GET.partition_subject(tenant)
    for _ in range(tries):
        reply = await client.nc.request(subject, codec.encode(GetLedger(tenant=tenant)), timeout=2.0)
        assert codec.decode(LedgerView, reply.data).tenant == tenant
    grew = [name for name, bus in replicas.items() if answered(bus) > before[name]]
    return grew[0] if len(grew) == 1 else None


async def test_two_replicas_split_the_partitions_and_each_is_answered_by_its_owner(
    settings: Settings, bus: Bus
) -> None:
    tenants = tenant_per_partition()
    async with replica(settings, "budget-a") as a, replica(settings, "budget-b") as b:
        await bus.discovery.instances(topics.BUDGET_SERVICE, 2, within=10)
        replicas = {"a": a, "b": b}
        ids = {name: r.calls.service_id(topics.BUDGET_SERVICE) for name, r in replicas.items()}
        assert None not in ids.values()
        expected = {p: next(n for n, i in ids.items() if i == owner(p, ids.values())) for p in tenants}
        async with asyncio.timeout(15):
            while True:
                try:
                    seen = {p: await answerer(bus, replicas, tenant) for p, tenant in tenants.items()}
                except nats.errors.NoRespondersError:
                    seen = {}  # a partition between owners for a moment
                if seen == expected:
                    break
                await asyncio.sleep(0.1)
        assert sorted(expected.values()).count("a") == PARTITIONS // 2
        # The callers' path: the key picks the partition, the owner answers.
        before = answered(a)
        tenant = tenants[next(p for p, name in expected.items() if name == "a")]
        view = await bus.calls.request(topics.BUDGET_GET, GetLedger(tenant=tenant), key=tenant)
        assert view.tenant == tenant and answered(a) == before + 1


async def test_a_partition_nobody_owns_falls_back_to_the_public_subject(settings: Settings, bus: Bus) -> None:
    async def nobody() -> set[str]:
        return set()

    async with replica(settings, "budget-lonely", ping=nobody) as lonely:
        await bus.discovery.instances(topics.BUDGET_SERVICE, 1, within=10)
        subject = topics.BUDGET_GET.partition_subject("acme")
        with pytest.raises(nats.errors.NoRespondersError):
            await bus.nc.request(subject, codec.encode(GetLedger(tenant="acme")), timeout=2.0)
        view = await bus.calls.request(topics.BUDGET_GET, GetLedger(tenant="acme"), key="acme")
        assert view.tenant == "acme" and answered(lonely) == 1
