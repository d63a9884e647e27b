"""The budget service against a real nats-server: round trips, idempotency, refusals, no overspend."""

from __future__ import annotations

import asyncio
import time

import pytest
from prometheus_client import CollectorRegistry

from maestro import codec, topics
from maestro.bus import Bus
from maestro.errors import RemoteError
from maestro.pricing import PriceTable
from maestro.runtime import open_bus
from maestro.settings import Settings
from proto.v1 import Commit, GetLedger, Release, Reserve, Usage
from proto.v1.budget import reservation_id_for
from services.budget import ledger
from services.budget.ledger import Ledger
from services.budget.service import serve
from tests.services.budget.support import answering, budget


def reserve(
    task: str, amount: int, tenant: str = "acme", attempt: int = 1, escrow: str | None = None
) -> Reserve:
    return Reserve(tenant=tenant, task_id=task, estimate_micro_usd=amount, attempt=attempt, escrow=escrow)


async def test_reserve_commit_release_round_trip(settings: Settings, bus: Bus) -> None:
    async with budget(settings.with_(default_limit_micro_usd=1_000_000), bus):
        granted = await bus.calls.request(topics.BUDGET_RESERVE, reserve("t1", 300_000))
        assert granted.granted and granted.reservation_id == "r-t1" and granted.held_micro_usd == 300_000
        await bus.calls.request(topics.BUDGET_RESERVE, reserve("t2", 200_000))
        view = await answering(bus)
        assert (view.spent_micro_usd, view.held_micro_usd, view.remaining_micro_usd, view.holds) == (
            0,
            500_000,
            500_000,
            2,
        )

        usage = Usage(model="offline", input_tokens=10_000, output_tokens=1_000)  # 30_000 + 15_000
        settled = await bus.calls.request(
            topics.BUDGET_COMMIT, Commit(tenant="acme", reservation_id="r-t1", usage=usage)
        )
        assert (settled.charged_micro_usd, settled.released_micro_usd) == (45_000, 255_000)
        released = await bus.calls.request(
            topics.BUDGET_RELEASE, Release(tenant="acme", reservation_id="r-t2")
        )
        assert released.released_micro_usd == 200_000 and not released.already_settled

        view = await answering(bus)
        assert (view.limit_micro_usd, view.spent_micro_usd, view.held_micro_usd, view.holds) == (
            1_000_000,
            45_000,
            0,
            0,
        )
        assert view.remaining_micro_usd == 955_000


async def test_each_operation_is_idempotent(settings: Settings, bus: Bus) -> None:
    async with budget(settings, bus):
        first = await bus.calls.request(topics.BUDGET_RESERVE, reserve("t1", 1000))
        again = await bus.calls.request(topics.BUDGET_RESERVE, reserve("t1", 1000))
        assert again == first
        await bus.calls.request(topics.BUDGET_RESERVE, reserve("t2", 1000))

        commit = Commit(tenant="acme", reservation_id="r-t1", usage=Usage(model="m", input_tokens=100))
        once = await bus.calls.request(topics.BUDGET_COMMIT, commit)
        twice = await bus.calls.request(topics.BUDGET_COMMIT, commit)
        assert once.charged_micro_usd == 300 and not once.already_settled
        # The repeat changes nothing and says what the reservation was charged, so a redelivered task
        # records its real cost.
        assert twice.already_settled and twice.charged_micro_usd == 300

        release = Release(tenant="acme", reservation_id="r-t2")
        assert not (await bus.calls.request(topics.BUDGET_RELEASE, release)).already_settled
        assert (await bus.calls.request(topics.BUDGET_RELEASE, release)).already_settled

        view = await answering(bus)
        assert (view.spent_micro_usd, view.held_micro_usd) == (300, 0)


async def test_each_attempt_of_a_task_holds_and_is_charged_apart(settings: Settings, bus: Bus) -> None:
    usage = Usage(model="m", input_tokens=100)  # 300 micro-USD
    async with budget(settings.with_(default_limit_micro_usd=1000), bus):
        first = await bus.calls.request(topics.BUDGET_RESERVE, reserve("t1", 400))
        committed = await bus.calls.request(
            topics.BUDGET_COMMIT, Commit(tenant="acme", reservation_id=first.reservation_id, usage=usage)
        )
        assert committed.charged_micro_usd == 300 and not committed.already_settled

        # The retry gets a hold of its own, once however often it asks, and its commit is charged.
        second, again = await asyncio.gather(
            *(bus.calls.request(topics.BUDGET_RESERVE, reserve("t1", 400, attempt=2)) for _ in range(2))
        )
        assert second == again and second.granted and second.reason == ""
        assert (second.reservation_id, second.held_micro_usd) == ("r-t1.2", 400)
        view = await answering(bus)
        assert (view.spent_micro_usd, view.held_micro_usd, view.holds) == (300, 400, 1)
        # Both attempts count against the limit: a third cannot hold what the first two took.
        third = await bus.calls.request(topics.BUDGET_RESERVE, reserve("t1", 301, attempt=3))
        assert not third.granted and "spent 300 + held 400 + estimate 301" in third.reason

        commit = Commit(tenant="acme", reservation_id=second.reservation_id, usage=usage)
        settled = await asyncio.gather(*(bus.calls.request(topics.BUDGET_COMMIT, commit) for _ in range(2)))
        assert sorted(s.already_settled for s in settled) == [False, True]
        assert {(s.reservation_id, s.charged_micro_usd) for s in settled} == {("r-t1.2", 300)}
        view = await answering(bus)
        assert (view.spent_micro_usd, view.held_micro_usd, view.holds) == (600, 0, 0)


async def test_a_commit_for_a_reservation_never_made_is_404_never_already_settled(
    settings: Settings, bus: Bus
) -> None:
    async with budget(settings, bus):
        await bus.calls.request(topics.BUDGET_RESERVE, reserve("t1", 1000))
        usage = Usage(model="m", input_tokens=100)
        with pytest.raises(RemoteError) as err:
            await bus.calls.request(
                topics.BUDGET_COMMIT, Commit(tenant="acme", reservation_id="r-t2", usage=usage)
            )
        assert err.value.code == 404 and "unknown reservation 'r-t2'" in err.value.description
        # Another tenant's reservation is unknown here too.
        with pytest.raises(RemoteError) as err:
            await bus.calls.request(
                topics.BUDGET_COMMIT, Commit(tenant="globex", reservation_id="r-t1", usage=usage)
            )
        assert err.value.code == 404
        # Releasing what is not held stays harmless: a guard releases what it may never have reserved.
        released = await bus.calls.request(
            topics.BUDGET_RELEASE, Release(tenant="acme", reservation_id="r-t2")
        )
        assert released.already_settled and released.released_micro_usd == 0
        view = await answering(bus)
        assert (view.spent_micro_usd, view.held_micro_usd) == (0, 1000)


async def test_a_ledger_full_of_holds_answers_429_not_a_refusal_and_counts_it(
    settings: Settings, bus: Bus
) -> None:
    # A tenant's ledger as the service writes it with every open hold it can keep: filled by the pure
    # ledger and stored, rather than by 4,096 round trips.
    holds = [reserve(f"t{n}", 10) for n in range(ledger.MAX_HOLDS)]
    full = ledger.apply(Ledger(tenant="acme", limit_micro_usd=1_000_000), holds, time.time(), PriceTable({}))
    kv = await bus.js.key_value(topics.BUCKET_BUDGET)
    await kv.put("acme", codec.encode(full.ledger))
    registry = CollectorRegistry()
    async with open_bus(settings, "budget-metrics", registry) as own:
        serving = asyncio.create_task(serve(own))
        try:
            assert (await answering(bus)).holds == ledger.MAX_HOLDS
            for _ in range(2):
                with pytest.raises(RemoteError) as err:
                    await bus.calls.request(topics.BUDGET_RESERVE, reserve("one-more", 10), key="acme")
                assert err.value.code == 429
                assert f"{ledger.MAX_HOLDS} open reservations" in err.value.description
            # What money cannot cover is still a verdict, full or not.
            dear = await bus.calls.request(topics.BUDGET_RESERVE, reserve("dear", 1_000_000))
            assert not dear.granted and "budget exceeded" in dear.reason
            await bus.calls.request(topics.BUDGET_RELEASE, Release(tenant="acme", reservation_id="r-t0"))
            assert (await bus.calls.request(topics.BUDGET_RESERVE, reserve("one-more", 10))).granted
        finally:
            own.lifetime.stop()
            await asyncio.wait_for(serving, 5)
    assert registry.get_sample_value("maestro_budget_backpressure_total", {"tenant": "acme"}) == 2
    refused = registry.get_sample_value(
        "maestro_budget_reservations_total", {"tenant": "acme", "outcome": "refused"}
    )
    assert refused == 1


async def test_refused_when_the_limit_cannot_cover_the_estimate(settings: Settings, bus: Bus) -> None:
    async with budget(settings.with_(default_limit_micro_usd=1000), bus):
        assert (await bus.calls.request(topics.BUDGET_RESERVE, reserve("t1", 700))).granted
        refusal = await bus.calls.request(topics.BUDGET_RESERVE, reserve("t2", 301))
        assert not refusal.granted and refusal.reservation_id == ""
        assert (
            "held 700" in refusal.reason
            and "estimate 301" in refusal.reason
            and "limit 1000" in refusal.reason
        )
        other = await bus.calls.request(topics.BUDGET_RESERVE, reserve("t9", 1000, tenant="globex"))
        assert other.granted  # tenants have separate ledgers
        view = await answering(bus)
        assert (view.held_micro_usd, view.holds) == (700, 1)


async def test_concurrent_reservers_across_two_replicas_never_overspend(settings: Settings, bus: Bus) -> None:
    limit, each, reservers = 1_000_000, 10_000, 200
    async with budget(settings.with_(default_limit_micro_usd=limit), bus, replicas=2):
        answers = await asyncio.gather(
            *(bus.calls.request(topics.BUDGET_RESERVE, reserve(f"t{n}", each)) for n in range(reservers))
        )
        granted = [a for a in answers if a.granted]
        assert len(granted) == limit // each
        assert all(not a.granted and "budget exceeded" in a.reason for a in answers if not a.granted)
        view = await answering(bus)
        assert view.spent_micro_usd + view.held_micro_usd <= limit
        assert (view.held_micro_usd, view.holds) == (limit, limit // each)

        # Commits and repeats through both replicas at once: each reservation is charged exactly once.
        commits = [
            Commit(tenant="acme", reservation_id=a.reservation_id, usage=Usage(model="m", input_tokens=1000))
            for a in granted
        ]
        settlements = await asyncio.gather(*(bus.calls.request(topics.BUDGET_COMMIT, c) for c in commits * 2))
        assert sum(s.charged_micro_usd for s in settlements if not s.already_settled) == 3000 * len(granted)
        assert sum(s.already_settled for s in settlements) == len(granted)
        assert {s.charged_micro_usd for s in settlements} == {3000}  # repeats say what was charged
        view = await answering(bus)
        assert (view.spent_micro_usd, view.held_micro_usd) == (3000 * len(granted), 0)


async def test_steps_drawing_from_one_escrow_across_two_replicas_never_overspend(
    settings: Settings, bus: Bus
) -> None:
    escrow = reservation_id_for("wf1--escrow")
    async with budget(settings.with_(default_limit_micro_usd=1_000_000), bus, replicas=2):
        assert (await bus.calls.request(topics.BUDGET_RESERVE, reserve("wf1--escrow", 600_000))).granted
        second = await bus.calls.request(topics.BUDGET_RESERVE, reserve("wf2--escrow", 600_000))
        assert not second.granted and "budget exceeded" in second.reason  # refused before its first step
        assert (
            await bus.calls.request(topics.BUDGET_RESERVE, reserve("plain", 400_000))
        ).granted  # none free

        # 70 steps of 10,000 at once through both replicas: the escrow covers 60 of them, and nothing more.
        steps = [reserve(f"s{n}", 10_000, escrow=escrow) for n in range(70)]
        answers = await asyncio.gather(*(bus.calls.request(topics.BUDGET_RESERVE, s) for s in steps))
        granted = [a for a in answers if a.granted]
        assert len(granted) == 60 and {a.drawn_micro_usd for a in granted} == {10_000}
        assert all("budget exceeded" in a.reason for a in answers if not a.granted)
        view = await answering(bus)
        assert (view.held_micro_usd, view.remaining_micro_usd, view.holds) == (1_000_000, 0, 62)
        # Reserving a step again finds its hold: the same answer, nothing more drawn.
        assert (
            await bus.calls.request(topics.BUDGET_RESERVE, steps[int(granted[0].task_id[1:])]) == granted[0]
        )
        # A step naming no open escrow reserves as a plain reservation would.
        unknown = reserve("s99", 1, escrow=reservation_id_for("nothing--escrow"))
        assert not (await bus.calls.request(topics.BUDGET_RESERVE, unknown)).granted

        # A step's release gives its money to the free budget; the emptied escrow's release gives nothing.
        freed = await bus.calls.request(
            topics.BUDGET_RELEASE, Release(tenant="acme", reservation_id=granted[0].reservation_id)
        )
        assert freed.released_micro_usd == 10_000 and freed.remaining_micro_usd == 10_000
        ended = await bus.calls.request(topics.BUDGET_RELEASE, Release(tenant="acme", reservation_id=escrow))
        assert (ended.released_micro_usd, ended.already_settled) == (0, False)
        view = await answering(bus)
        assert (view.held_micro_usd, view.remaining_micro_usd, view.holds) == (990_000, 10_000, 60)


async def test_an_escrow_released_at_the_end_frees_what_is_left(settings: Settings, bus: Bus) -> None:
    escrow = reservation_id_for("wf1--escrow")
    async with budget(settings.with_(default_limit_micro_usd=1000), bus):
        assert (await bus.calls.request(topics.BUDGET_RESERVE, reserve("wf1--escrow", 1000))).granted
        step = await bus.calls.request(topics.BUDGET_RESERVE, reserve("s1", 400, escrow=escrow))
        assert (step.granted, step.held_micro_usd, step.drawn_micro_usd) == (True, 400, 400)
        usage = Usage(model="m", input_tokens=100)  # 300 micro-USD
        await bus.calls.request(
            topics.BUDGET_COMMIT, Commit(tenant="acme", reservation_id=step.reservation_id, usage=usage)
        )
        ended = await bus.calls.request(topics.BUDGET_RELEASE, Release(tenant="acme", reservation_id=escrow))
        assert ended.released_micro_usd == 600
        view = await answering(bus)
        assert (view.spent_micro_usd, view.held_micro_usd, view.remaining_micro_usd) == (300, 0, 700)


async def test_undecodable_or_invalid_requests_answer_400(settings: Settings, bus: Bus) -> None:
    async with budget(settings, bus):
        for subject in (
            topics.BUDGET_RESERVE.subject,
            topics.BUDGET_COMMIT.subject,
            topics.BUDGET_GET.subject,
        ):
            reply = await bus.nc.request(subject, b"\x00{not json", timeout=2)
            assert reply.headers and reply.headers[topics.HEADER_ERROR_CODE] == "400"
        with pytest.raises(RemoteError) as err:
            await bus.calls.request(topics.BUDGET_GET, GetLedger(tenant="Not A Tenant"))
        assert err.value.code == 400 and "tenant" in err.value.description
        reply = await bus.nc.request(
            topics.BUDGET_RESERVE.subject,
            b'{"tenant":"acme","task_id":"t1","estimate_micro_usd":-5}',
            timeout=2,
        )
        assert reply.headers and reply.headers[topics.HEADER_ERROR_CODE] == "400"
        assert "estimate_micro_usd" in reply.headers[topics.HEADER_ERROR]
        assert (await answering(bus)).holds == 0  # and it keeps serving


async def test_metrics_count_granted_and_refused_reservations(settings: Settings, bus: Bus) -> None:
    registry = CollectorRegistry()
    async with open_bus(settings.with_(default_limit_micro_usd=100), "budget-metrics", registry) as own:
        serving = asyncio.create_task(serve(own))
        try:
            await answering(bus)
            answers = await asyncio.gather(
                *(bus.calls.request(topics.BUDGET_RESERVE, reserve(f"t{n}", 10)) for n in range(15))
            )
            assert sum(a.granted for a in answers) == 10
        finally:
            own.lifetime.stop()
            await asyncio.wait_for(serving, 5)

    def sample(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert sample("maestro_budget_reservations_total", tenant="acme", outcome="granted") == 10
    assert sample("maestro_budget_reservations_total", tenant="acme", outcome="refused") == 5
    assert sample("maestro_budget_held_micro_usd", tenant="acme") == 100
    assert sample("maestro_budget_remaining_micro_usd", tenant="acme") == 0
    assert sample("maestro_budget_limit_micro_usd", tenant="acme") == 100
    assert sample("maestro_budget_cas_conflicts_total") == 0
    writes = sample("maestro_budget_ledger_writes_total")
    assert writes is not None and 1 <= writes <= 10  # grants were group-committed
