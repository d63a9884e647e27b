"""Budget behaviour over time and config, on a real nats-server: expiry by the sweeper, rollover at a UTC
boundary, alerts once, unpriced models, and limits set through the endpoint."""

from __future__ import annotations

from datetime import UTC, datetime

from maestro import topics
from maestro.bus import Bus
from maestro.runtime import open_bus, running_service
from maestro.settings import Settings
from proto.v1 import (
    Commit,
    HoldExpired,
    LateCommit,
    Overage,
    Reserve,
    SetBudget,
    ThresholdCrossed,
    Usage,
    WindowRolled,
)
from services.budget.service import SERVICE
from tests.services.budget.support import answering, budget_on, read_budget_events, wait_for_events


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now.timestamp()

    def __call__(self) -> float:
        return self.now


async def test_a_dead_workers_hold_is_released_by_the_sweeper_with_an_event(
    settings: Settings, bus: Bus
) -> None:
    async with running_service(SERVICE, settings.with_(budget_sweep_s=0.2)):
        await answering(bus, "idle")
        granted = await bus.calls.request(
            topics.BUDGET_RESERVE, Reserve(tenant="idle", task_id="dead", estimate_micro_usd=5000, ttl_s=0.3)
        )
        assert granted.granted
        # Nobody touches the tenant again: only the sweeper can give the hold back.
        events = await wait_for_events(bus.js, "idle", lambda found: len(found) >= 1)
        (expired,) = events
        assert isinstance(expired, HoldExpired)
        assert (expired.reservation_id, expired.task_id, expired.released_micro_usd) == (
            "r-dead",
            "dead",
            5000,
        )
        view = await answering(bus, "idle")
        assert (view.held_micro_usd, view.holds) == (0, 0)


async def test_each_attempts_expired_hold_is_announced_apart_under_its_task(
    settings: Settings, bus: Bus
) -> None:
    async with running_service(SERVICE, settings.with_(budget_sweep_s=0.2)):
        await answering(bus, "retried")
        for attempt, amount in ((1, 5000), (2, 4000)):
            reserve = Reserve(
                tenant="retried", task_id="dead", estimate_micro_usd=amount, ttl_s=0.3, attempt=attempt
            )
            assert (await bus.calls.request(topics.BUDGET_RESERVE, reserve)).granted
        events = await wait_for_events(bus.js, "retried", lambda found: len(found) >= 2)
        assert sorted(
            (e.reservation_id, e.task_id, e.released_micro_usd) for e in events if isinstance(e, HoldExpired)
        ) == [("r-dead", "dead", 5000), ("r-dead.2", "dead", 4000)]
        view = await answering(bus, "retried")
        assert (view.held_micro_usd, view.holds) == (0, 0)


async def test_a_daily_window_rolls_over_at_midnight_utc(settings: Settings, bus: Bus) -> None:
    clock = Clock(datetime(2025, 3, 14, 23, 59, 58, tzinfo=UTC))
    async with open_bus(settings, "budget-clock") as own, budget_on(own, clock):
        await answering(bus)
        await bus.calls.request(
            topics.BUDGET_SET, SetBudget(tenant="acme", window="daily", limit_micro_usd=10_000)
        )
        await bus.calls.request(
            topics.BUDGET_RESERVE, Reserve(tenant="acme", task_id="a", estimate_micro_usd=9000)
        )
        usage = Usage(model="offline", input_tokens=1000)  # 3000 at the default price
        await bus.calls.request(
            topics.BUDGET_COMMIT, Commit(tenant="acme", reservation_id="r-a", usage=usage)
        )
        await bus.calls.request(
            topics.BUDGET_RESERVE, Reserve(tenant="acme", task_id="b", estimate_micro_usd=7000, ttl_s=86_400)
        )
        before = await answering(bus)
        assert (before.window_id, before.spent_micro_usd, before.remaining_micro_usd) == (
            "2025-03-14",
            3000,
            0,
        )

        clock.now = datetime(2025, 3, 15, tzinfo=UTC).timestamp()
        after = await answering(bus)
        assert (after.window_id, after.spent_micro_usd, after.held_micro_usd) == ("2025-03-15", 0, 7000)
        assert after.previous is not None and after.previous.spent_micro_usd == 3000
        assert after.window_ends_at == datetime(2025, 3, 16, tzinfo=UTC)
        # Yesterday's hold is charged today, once.
        await bus.calls.request(
            topics.BUDGET_COMMIT, Commit(tenant="acme", reservation_id="r-b", usage=usage)
        )
        assert (await answering(bus)).spent_micro_usd == 3000
        rolled = [e for e in await read_budget_events(bus.js, "acme") if isinstance(e, WindowRolled)]
        assert [e.window_id for e in rolled] == ["2025-03-15"]


async def test_a_commit_after_its_hold_expired_is_charged_late_and_announced(
    settings: Settings, bus: Bus
) -> None:
    start = datetime(2025, 3, 14, 12, tzinfo=UTC)
    clock = Clock(start)
    async with open_bus(settings, "budget-clock") as own, budget_on(own, clock):
        await answering(bus)
        await bus.calls.request(
            topics.BUDGET_RESERVE,
            Reserve(tenant="acme", task_id="slow", estimate_micro_usd=9000, ttl_s=60, role="implementer"),
        )
        clock.now += 61  # the task outlives its hold
        expired = await answering(bus)
        assert (expired.held_micro_usd, expired.holds, expired.spent_micro_usd) == (0, 0, 0)

        usage = Usage(model="offline", input_tokens=1000)  # 3000 at the default price
        commit = Commit(tenant="acme", reservation_id="r-slow", usage=usage)
        late = await bus.calls.request(topics.BUDGET_COMMIT, commit)
        assert (late.charged_micro_usd, late.released_micro_usd, late.late, late.already_settled) == (
            3000,
            0,
            True,
            False,
        )
        again = await bus.calls.request(topics.BUDGET_COMMIT, commit)
        assert (again.charged_micro_usd, again.late, again.already_settled) == (3000, False, True)
        view = await answering(bus)
        assert (view.spent_micro_usd, view.held_micro_usd) == (3000, 0)
        assert view.roles["implementer"].spent_micro_usd == 3000

        events = await wait_for_events(
            bus.js, "acme", lambda found: any(isinstance(e, LateCommit) for e in found)
        )
        assert [type(e) for e in events] == [HoldExpired, LateCommit]  # one each: the repeat is silent
        announced = events[1]
        assert isinstance(announced, LateCommit)
        assert (announced.reservation_id, announced.task_id, announced.held_micro_usd) == (
            "r-slow",
            "slow",
            9000,
        )
        assert (announced.charged_micro_usd, announced.overage_micro_usd) == (3000, 0)
        assert announced.expired_at == datetime.fromtimestamp(start.timestamp() + 60, UTC)


async def test_alerts_are_published_once_per_threshold(settings: Settings, bus: Bus) -> None:
    async with running_service(SERVICE, settings.with_(default_limit_micro_usd=10_000)):
        await answering(bus)
        for n in range(10):  # 3000 each: 30%, 60%, 90%, then refused
            task = f"t{n}"
            reservation = await bus.calls.request(
                topics.BUDGET_RESERVE, Reserve(tenant="acme", task_id=task, estimate_micro_usd=3000)
            )
            if reservation.granted:
                usage = Usage(model="offline", input_tokens=1000)
                await bus.calls.request(
                    topics.BUDGET_COMMIT, Commit(tenant="acme", reservation_id=f"r-{task}", usage=usage)
                )
        # One more that overruns its estimate: charged anyway, 100% crossed, marked as overage.
        await bus.calls.request(topics.BUDGET_SET, SetBudget(tenant="acme", limit_micro_usd=10_000))
        await bus.calls.request(
            topics.BUDGET_RESERVE, Reserve(tenant="acme", task_id="last", estimate_micro_usd=1000)
        )
        big = Usage(model="offline", input_tokens=1000)
        settled = await bus.calls.request(
            topics.BUDGET_COMMIT, Commit(tenant="acme", reservation_id="r-last", usage=big)
        )
        assert settled.overage_micro_usd == 2000
        view = await answering(bus)  # a barrier: the replica published the earlier batches' events first
        assert view.overage_micro_usd == 2000 and view.remaining_micro_usd < 0
        refused = await bus.calls.request(
            topics.BUDGET_RESERVE, Reserve(tenant="acme", task_id="z", estimate_micro_usd=1)
        )
        assert not refused.granted and "over its limit" in refused.reason
        events = await read_budget_events(bus.js, "acme")
        assert [e.percent for e in events if isinstance(e, ThresholdCrossed)] == [50, 80, 100]
        assert [type(e) for e in events if not isinstance(e, ThresholdCrossed)] == [Overage]


async def test_an_unpriced_model_is_refused_for_that_task_alone(settings: Settings, bus: Bus) -> None:
    priced = settings.with_(pricing="local=0:0,secret=none", default_limit_micro_usd=1000)
    async with running_service(SERVICE, priced):
        await answering(bus)
        asks = [
            Reserve(tenant="acme", task_id="s", estimate_micro_usd=10, model="secret"),
            Reserve(tenant="acme", task_id="p", estimate_micro_usd=10, model="gpt-4o"),
            Reserve(tenant="acme", task_id="l", estimate_micro_usd=5000, model="local"),
            Reserve(tenant="globex", task_id="g", estimate_micro_usd=10, model="gpt-4o"),
        ]
        answers = [await bus.calls.request(topics.BUDGET_RESERVE, ask) for ask in asks]
        assert [a.granted for a in answers] == [False, True, True, True]
        assert "'secret' has no price" in answers[0].reason
        assert answers[2].held_micro_usd == 0  # a local model needs no budget
        view = await answering(bus)
        assert (view.held_micro_usd, view.holds) == (10, 2)


async def test_limits_set_through_one_replica_hold_at_once_on_every_replica(
    settings: Settings, bus: Bus
) -> None:
    async with running_service(SERVICE, settings), running_service(SERVICE, settings):
        await answering(bus)
        view = await bus.calls.request(
            topics.BUDGET_SET,
            SetBudget(tenant="acme", limit_micro_usd=5000, window="monthly", limit_tokens=100),
        )
        assert (view.limit_micro_usd, view.window, view.limit_tokens) == (5000, "monthly", 100)
        await bus.calls.request(
            topics.BUDGET_SET, SetBudget(tenant="acme", scope="role", name="planner", limit_micro_usd=50)
        )
        # Whichever replica answers, the new limits apply to the very next reservation.
        for n in range(6):
            refused = await bus.calls.request(
                topics.BUDGET_RESERVE,
                Reserve(tenant="acme", task_id=f"p{n}", estimate_micro_usd=60, role="planner"),
            )
            assert not refused.granted and "role planner" in refused.reason
        too_big = Reserve(tenant="acme", task_id="big", estimate_micro_usd=5001)
        assert not (await bus.calls.request(topics.BUDGET_RESERVE, too_big)).granted
        many_tokens = Reserve(tenant="acme", task_id="tok", estimate_micro_usd=1, estimate_tokens=101)
        assert "token budget" in (await bus.calls.request(topics.BUDGET_RESERVE, many_tokens)).reason
        shown = await answering(bus)
        assert shown.roles["planner"].limit_micro_usd == 50 and shown.window_id == datetime.now(UTC).strftime(
            "%Y-%m"
        )
