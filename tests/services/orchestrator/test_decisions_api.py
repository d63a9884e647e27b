"""GET /v1/policy/decisions: the guards' tallies summed per step and rule (pure), and served over HTTP from
what a real nats-server stored."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from maestro import topics
from maestro.bus import Bus
from maestro.settings import Settings
from proto.v1 import DecisionPoint, DecisionTally
from services.orchestrator.decisions_api import MAX_POINTS, BadStep, history, parse_step, step_for
from tests.services.orchestrator.api_client import Api
from tests.services.orchestrator.support import orchestrator

SINCE = datetime(2026, 12, 3, 7, 0, tzinfo=UTC)


def tally(
    at: datetime,
    tenant: str = "acme",
    guard: str = "guard-a",
    verdicts: dict[str, int] | None = None,
    rules: dict[str, int] | None = None,
) -> DecisionTally:
    return DecisionTally(
        tenant=tenant, at=at, interval_s=10.0, guard=guard, verdicts=verdicts or {}, rules=rules or {}
    )


# -- pure ---------------------------------------------------------------------------------------------------
def test_tallies_are_summed_per_step_over_guards_and_tenants_oldest_first() -> None:
    tallies = [
        tally(SINCE + timedelta(seconds=5), verdicts={"allow": 2}),
        tally(
            SINCE + timedelta(seconds=50), guard="guard-b", verdicts={"allow": 1, "deny": 1}, rules={"r.a": 1}
        ),
        tally(
            SINCE + timedelta(seconds=61), tenant="globex", verdicts={"deny": 3}, rules={"r.a": 2, "r.b": 3}
        ),
        tally(SINCE + timedelta(seconds=179), verdicts={"redact": 1}, rules={"r.c": 1}),
    ]
    answer = history(tallies, SINCE, SINCE + timedelta(minutes=3), 60.0)

    assert answer.points == [
        DecisionPoint(at=SINCE, verdicts={"allow": 3, "deny": 1}, rules={"r.a": 1}),
        DecisionPoint(at=SINCE + timedelta(minutes=1), verdicts={"deny": 3}, rules={"r.a": 2, "r.b": 3}),
        DecisionPoint(at=SINCE + timedelta(minutes=2), verdicts={"redact": 1}, rules={"r.c": 1}),
    ]
    assert answer.verdicts == {"allow": 3, "deny": 4, "redact": 1}
    assert answer.rules == {"r.a": 3, "r.b": 3, "r.c": 1}
    assert (answer.since, answer.step_s, answer.partial) == (SINCE, 60.0, False)


def test_every_step_of_the_window_has_a_point_and_tallies_at_its_edges_count_in_the_nearest() -> None:
    tallies = [
        tally(SINCE - timedelta(seconds=8), verdicts={"allow": 1}),  # began before the window, stored in it
        tally(SINCE + timedelta(minutes=5), verdicts={"deny": 1}),  # stamped past now (a guard's clock ahead)
    ]
    answer = history(tallies, SINCE, SINCE + timedelta(seconds=150), 60.0, partial=True)
    assert [p.at for p in answer.points] == [SINCE + timedelta(seconds=s) for s in (0, 60, 120)]
    assert [p.verdicts for p in answer.points] == [{"allow": 1}, {}, {"deny": 1}]
    assert answer.partial
    assert history([], SINCE, SINCE, 10.0).points == [DecisionPoint(at=SINCE, verdicts={}, rules={})]


def test_the_step_is_the_window_over_60_at_least_the_tally_interval_in_whole_seconds() -> None:
    assert step_for(timedelta(hours=24), None, 10.0) == 1440.0
    assert step_for(timedelta(minutes=5), None, 10.0) == 10.0  # 5 s would be empty but one in two
    assert step_for(timedelta(minutes=5), None, 0.3) == 5.0
    assert step_for(timedelta(minutes=1), None, 0.3) == 1.0
    assert step_for(timedelta(hours=1), 300.0, 10.0) == 300.0
    assert step_for(timedelta(hours=1), 1.0, 10.0) == 10.0
    with pytest.raises(BadStep, match=f"more than {MAX_POINTS} points"):
        step_for(timedelta(days=7), 60.0, 10.0)


@pytest.mark.parametrize(
    ("text", "seconds"), [("30", 30.0), ("30s", 30.0), ("5m", 300.0), ("2h", 7200.0), ("1d", 86400.0)]
)
def test_a_step_is_seconds_or_a_span_with_its_unit(text: str, seconds: float) -> None:
    assert parse_step(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "0m", "1.5m", "-5", "5 minutes", "8d", "1w"])
def test_a_step_that_is_no_span_or_out_of_bounds_is_refused(text: str) -> None:
    with pytest.raises(BadStep):
        parse_step(text)


# -- the route, over tallies stored on a real nats-server ----------------------------------------------------
@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    async with orchestrator(settings) as port, aiohttp.ClientSession() as http:
        yield Api(http, f"http://127.0.0.1:{port}")


async def store(bus: Bus, *tallies: DecisionTally) -> None:
    for t in tallies:
        await bus.streams.publish(
            topics.DECISION_TALLIES.at(t.tenant), t, msg_id=topics.tally_msg_id(t.guard, t.tenant, t.at)
        )


async def test_the_route_sums_stored_tallies_per_step_and_rule_for_all_tenants_or_one(
    api: Api, bus: Bus
) -> None:
    since = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=3)
    await store(
        bus,
        tally(since + timedelta(seconds=10), verdicts={"allow": 2}, rules={}),
        tally(since + timedelta(seconds=20), guard="guard-b", verdicts={"deny": 1}, rules={"r.a": 1}),
        tally(
            since + timedelta(seconds=70), tenant="globex", verdicts={"deny": 2}, rules={"r.a": 2, "r.b": 1}
        ),
        # Sent twice by its guard (a retried publish): stored, and counted, once.
        tally(
            since + timedelta(seconds=70), tenant="globex", verdicts={"deny": 2}, rules={"r.a": 2, "r.b": 1}
        ),
    )
    query = f"since={since.isoformat().replace('+00:00', 'Z')}&step=1m"

    status, body = await api.call("GET", f"/v1/policy/decisions?{query}")
    assert status == 200, body
    assert (body["since"], body["step_s"], body["partial"]) == (
        since.isoformat().replace("+00:00", "Z"),
        60.0,
        False,
    )
    assert [(p["verdicts"], p["rules"]) for p in body["points"]][:2] == [
        ({"allow": 2, "deny": 1}, {"r.a": 1}),
        ({"deny": 2}, {"r.a": 2, "r.b": 1}),
    ]
    assert all(p["verdicts"] == {} for p in body["points"][2:])
    assert (body["verdicts"], body["rules"]) == ({"allow": 2, "deny": 3}, {"r.a": 3, "r.b": 1})

    status, body = await api.call("GET", f"/v1/policy/decisions?{query}&tenant=globex")
    assert status == 200, body
    assert (body["verdicts"], body["rules"]) == ({"deny": 2}, {"r.a": 2, "r.b": 1})


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("since=yesterday", "since"),
        ("since=2026-12-03T07:00:00", "since"),  # no zone
        ("since=8d", "since"),
        ("step=5minutes", "step"),
        ("step=", "step"),
        ("step=%205m", "step"),
        ("since=7d&step=1m", "step"),  # more points than one answer has
        ("tenant=Not_A_Tenant", "tenant"),
        ("tenat=acme", "tenat"),
        ("step=1m&step=5m", "step"),
    ],
)
async def test_a_bad_parameter_is_a_400_naming_it(api: Api, query: str, field: str) -> None:
    status, body = await api.call("GET", f"/v1/policy/decisions?{query}")
    assert (status, body["field"]) == (400, field), body
