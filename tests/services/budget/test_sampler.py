"""Spend samples: which tenants are sampled and when (no server), then the samples a running budget publishes
on a real nats-server: what was charged, nothing while nothing changes, one per interval from two replicas."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry

from maestro import topics
from maestro.bus import Bus
from maestro.runtime import open_bus, running_service
from maestro.settings import Settings
from proto.v1 import BudgetEvents, Commit, Reserve, SetBudget, SpendSampled, Usage
from services.budget.sampler import Samples, interval_of, next_round_at, sample_msg_id
from services.budget.service import SERVICE, serve_budget
from tests.services.budget.support import answering, read_budget_events, wait_for_events

EVERY_S = 0.5
PRICED = "unit=1:0"  # one micro-USD per input token: a commit's cost is its tokens


def _sample(tenant: str = "acme", spent: int = 0, held: int = 0, at: float = 1000.0) -> SpendSampled:
    return SpendSampled(
        tenant=tenant,
        at=datetime.fromtimestamp(at, UTC),
        window_id="total",
        spent_micro_usd=spent,
        held_micro_usd=held,
        limit_micro_usd=10_000,
        remaining_micro_usd=10_000 - spent - held,
        interval_s=60.0,
    )


def _samples(events: list[BudgetEvents]) -> list[SpendSampled]:
    return [e for e in events if isinstance(e, SpendSampled)]


# -- the pure part -------------------------------------------------------------------------------------------
def test_an_instant_falls_in_the_interval_numbered_from_the_epoch() -> None:
    assert [interval_of(t, 60.0) for t in (0.0, 59.999, 60.0, 119.0, 120.0)] == [0, 0, 1, 1, 2]
    assert interval_of(1.2, 0.5) == 2


def test_a_round_samples_in_the_middle_of_an_interval_the_same_for_every_replica() -> None:
    assert next_round_at(120.0, 60.0) == 150.0
    assert next_round_at(149.9, 60.0) == 150.0
    assert next_round_at(150.0, 60.0) == 210.0
    # Two replicas whose clocks differ by less than half an interval sample in the same one.
    assert interval_of(next_round_at(130.0, 60.0), 60.0) == interval_of(
        next_round_at(170.0 - 60.0, 60.0), 60.0
    )


def test_a_sample_of_the_same_tenant_window_and_interval_has_one_msg_id() -> None:
    first, again = _sample(at=1000.0), _sample(spent=5, at=1019.0)  # interval 16 of 60 s: 960 to 1020

    assert sample_msg_id(first) == sample_msg_id(again) == topics.sample_msg_id("acme", "total", 16)
    assert sample_msg_id(_sample(at=1020.0)) != sample_msg_id(first)
    assert sample_msg_id(_sample(tenant="globex")) != sample_msg_id(first)


def test_marked_tenants_are_due_once_and_those_holding_money_every_round() -> None:
    samples = Samples()
    samples.mark("b")
    samples.mark("a")
    samples.mark("a")

    assert samples.due() == ["a", "b"]
    assert samples.due() == []
    samples.published(_sample("a", held=500))
    samples.published(_sample("b", spent=500))
    assert samples.due() == ["a"]  # its hold may expire with no operation on it
    assert samples.due() == ["a"]


def test_a_sample_equal_to_the_last_published_but_for_its_time_is_no_change() -> None:
    samples = Samples()
    assert samples.changed(_sample(spent=100))
    samples.published(_sample(spent=100))

    assert not samples.changed(_sample(spent=100, at=5000.0))
    assert samples.changed(_sample(spent=101))
    assert samples.changed(_sample(spent=100, held=1))
    assert samples.changed(_sample("globex", spent=100))


# -- a running budget ----------------------------------------------------------------------------------------
async def _reserve(bus: Bus, tenant: str, task_id: str, estimate: int) -> bool:
    reserve = Reserve(tenant=tenant, task_id=task_id, estimate_micro_usd=estimate)
    return bool((await bus.calls.request(topics.BUDGET_RESERVE, reserve)).granted)


async def _commit(bus: Bus, tenant: str, task_id: str, tokens: int) -> int:
    usage = Usage(model="unit", input_tokens=tokens)
    commit = Commit(tenant=tenant, reservation_id=f"r-{task_id}", usage=usage)
    return int((await bus.calls.request(topics.BUDGET_COMMIT, commit)).charged_micro_usd)


async def test_a_commit_is_sampled_with_what_it_charged(settings: Settings, bus: Bus) -> None:
    async with running_service(SERVICE, settings.with_(budget_sample_s=EVERY_S, pricing=PRICED)):
        await answering(bus, "acme")
        await bus.calls.request(topics.BUDGET_SET, SetBudget(tenant="acme", limit_micro_usd=10_000))
        assert await _reserve(bus, "acme", "t1", 3_000)
        assert await _commit(bus, "acme", "t1", 1_234) == 1_234

        events = await wait_for_events(
            bus.js, "acme", lambda found: any(s.spent_micro_usd for s in _samples(found)), samples=True
        )

    last = _samples(events)[-1]
    assert (last.spent_micro_usd, last.held_micro_usd, last.limit_micro_usd, last.remaining_micro_usd) == (
        1_234,
        0,
        10_000,
        8_766,
    )
    assert (last.spent_tokens, last.window_id, last.interval_s) == (1_234, "total", EVERY_S)


async def test_a_replica_that_stops_samples_what_changed_since_its_last_round(
    settings: Settings, bus: Bus
) -> None:
    # Its rounds are an hour apart: the change is sampled as the replica stops, not by a round.
    async with running_service(SERVICE, settings.with_(budget_sample_s=3600.0, pricing=PRICED)):
        await answering(bus, "acme")
        assert await _reserve(bus, "acme", "t1", 3_000)
        assert await _commit(bus, "acme", "t1", 777) == 777

    (last,) = _samples(await read_budget_events(bus.js, "acme", samples=True))
    assert (last.spent_micro_usd, last.held_micro_usd, last.interval_s) == (777, 0, 3600.0)


async def test_a_ledger_that_does_not_change_is_not_sampled_again(settings: Settings, bus: Bus) -> None:
    async with running_service(SERVICE, settings.with_(budget_sample_s=EVERY_S, pricing=PRICED)):
        await answering(bus, "quiet")
        # A hold left open: the tenant is read every round (its hold may expire), and is still not sampled.
        assert await _reserve(bus, "quiet", "open", 2_000)
        first = _samples(await wait_for_events(bus.js, "quiet", bool, samples=True))
        assert [(s.spent_micro_usd, s.held_micro_usd) for s in first] == [(0, 2_000)]
        # Operations that change nothing: the same reservation again, and one refused.
        assert await _reserve(bus, "quiet", "open", 2_000)
        assert not await _reserve(bus, "quiet", "huge", 10**12)

        # Another tenant changed after all that is sampled in a later round, which read "quiet" too.
        assert await _reserve(bus, "other", "t1", 1_000)
        await wait_for_events(bus.js, "other", bool, samples=True)

        assert _samples(await read_budget_events(bus.js, "quiet", samples=True)) == first


@contextlib.asynccontextmanager
async def _replica(settings: Settings, name: str) -> AsyncIterator[CollectorRegistry]:
    """One budget replica on a bus of its own, with its metrics on a registry the test reads."""
    registry = CollectorRegistry()
    async with open_bus(settings, name, registry) as own:
        serving = asyncio.create_task(serve_budget(own))
        try:
            yield registry
        finally:
            own.lifetime.stop()
            await asyncio.wait_for(serving, 10)


async def test_two_replicas_that_both_changed_a_tenant_store_one_sample_per_interval(
    settings: Settings, bus: Bus
) -> None:
    settings = settings.with_(budget_sample_s=EVERY_S, pricing=PRICED)
    async with _replica(settings, "budget-a") as a, _replica(settings, "budget-b") as b:
        await answering(bus, "shared")
        # Requests without a key go to either replica at random: over 3 intervals, both change the tenant in
        # each (the registries below show each served it), and both sample it in the same rounds.
        charged = 0
        for n in range(30):
            assert await _reserve(bus, "shared", f"t{n}", 100)
            charged += await _commit(bus, "shared", f"t{n}", 10 + n)
            await asyncio.sleep(0.05)  # spreads the changes over intervals; nothing is waited for here
        for registry in (a, b):
            served = registry.get_sample_value(
                "maestro_budget_reservations_total", {"tenant": "shared", "outcome": "granted"}
            )
            assert served

        events = await wait_for_events(
            bus.js,
            "shared",
            lambda found: any(s.spent_micro_usd == charged for s in _samples(found)),
            samples=True,
        )

    samples = _samples(events)
    intervals = [interval_of(s.at.timestamp(), s.interval_s) for s in samples]
    assert len(samples) >= 2
    assert len(set(intervals)) == len(intervals), intervals
    assert intervals == sorted(intervals)
