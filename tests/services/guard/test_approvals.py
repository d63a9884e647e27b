"""Parked tasks: what the sweeper forgets (pure); parking, deciding and forgetting on a real nats-server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry

from maestro import codec, history, topics
from maestro.bus import Bus
from proto.v1 import (
    APPROVAL_TIMEOUT_BY,
    ApprovalDecision,
    AwaitingApproval,
    DeadLetter,
    Decision,
    Parked,
    Rejected,
    TaskEvent,
    TaskRequest,
    Violation,
)
from services.guard import approvals
from services.guard.approvals import ApprovalMetrics, Approvals, ParkedStore

T0 = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
APPROVE = Decision(
    verdict="approve",
    violations=[Violation(policy="commands", rule_id="commands.sudo-install", location="commands[0]")],
    policy_version="test@1",
    policy_hash="abc",
    estimate_micro_usd=100,
)


def request(task_id: str = "t-1", tenant: str = "acme") -> TaskRequest:
    return TaskRequest(id=task_id, tenant=tenant, role="implementer", prompt="install jq")


def parked(
    task_id: str = "t-1", *, expires: datetime | None = T0, decided: ApprovalDecision | None = None
) -> Parked:
    return Parked(
        request=request(task_id), decision=APPROVE, parked_at=T0, expires_at=expires, decided=decided
    )


def decided_at(at: datetime) -> ApprovalDecision:
    return ApprovalDecision(task_id="t-1", tenant="acme", approved=True, by="alice", at=at)


def timed_out(task_id: str = "t-1", at: datetime | None = T0) -> ApprovalDecision:
    """The rejection the orchestrator sends when nobody decided before the deadline."""
    return ApprovalDecision(
        task_id=task_id,
        tenant="acme",
        approved=False,
        by=APPROVAL_TIMEOUT_BY,
        reason="deadline passed",
        at=at,
    )


# -- pure --------------------------------------------------------------------------------------------
def test_undecided_entries_are_never_forgotten_whatever_their_deadline() -> None:
    entries = [
        (parked("t-past", expires=T0 - timedelta(hours=9)), 1),
        (parked("t-now", expires=T0), 2),
        (parked("t-never", expires=None), 3),
    ]
    assert approvals.forgettable(entries, T0) == []


def test_decided_entries_are_forgotten_once_the_retention_passed() -> None:
    old = (parked("t-old", decided=decided_at(T0 - approvals.DECIDED_RETENTION)), 7)
    recent = (parked("t-recent", decided=decided_at(T0 - timedelta(minutes=1))), 8)
    assert approvals.forgettable([old, recent], T0) == [("t-old", 7)]


def test_a_timeout_is_a_rejection_that_says_so() -> None:
    decision = timed_out()
    assert approvals.rejection_reason(decision) == "approval timed out"
    refused = approvals.refusal(parked(), decision)
    assert refused.verdict == "deny"
    assert [v.rule_id for v in refused.violations] == ["commands.sudo-install", "approval.timed-out"]
    assert (refused.policy_version, refused.policy_hash) == ("test@1", "abc")


def test_a_human_rejection_names_who_and_why() -> None:
    decision = ApprovalDecision(task_id="t-1", tenant="acme", approved=False, by="bob", reason="not today")
    assert approvals.rejection_reason(decision) == "rejected by bob: not today"
    assert approvals.refusal(parked(), decision).violations[-1].rule_id == "approval.rejected"


def test_the_same_decision_redelivered_is_recognised_whatever_its_time() -> None:
    assert approvals.same_decision(decided_at(T0), decided_at(T0 + timedelta(hours=1)))
    assert not approvals.same_decision(
        decided_at(T0), ApprovalDecision(task_id="t-1", tenant="acme", approved=False)
    )


# -- on a real nats-server -------------------------------------------------------------------------------
@pytest.fixture
async def serving(bus: Bus) -> AsyncIterator[Approvals]:
    """The approvals consumer running on `bus` (no sweeper: the tests sweep when they mean to)."""
    store = await ParkedStore.open(bus.js)
    deciding = Approvals(bus, store, ApprovalMetrics.create(CollectorRegistry()))
    task = asyncio.create_task(bus.consumers.consume(approvals.CONSUMER, deciding.handle))
    try:
        yield deciding
    finally:
        bus.lifetime.stop()
        await asyncio.wait_for(task, 10)


async def wait_events(
    bus: Bus, task_id: str, ready: Callable[[list[TaskEvent]], bool], within: float = 10.0
) -> list[TaskEvent]:
    async with asyncio.timeout(within):
        while True:
            events = await history.read_events(bus.js, task_id)
            if ready(events):
                return events
            await asyncio.sleep(0.02)


def rejections(events: list[TaskEvent]) -> list[Rejected]:
    return [e for e in events if isinstance(e, Rejected)]


async def decisions_settled(bus: Bus, within: float = 10.0) -> None:
    """Wait until the approvals consumer has acked every decision published so far."""
    async with asyncio.timeout(within):
        while True:
            info = await bus.js.consumer_info(topics.STREAM_APPROVALS, topics.DURABLE_GUARD_APPROVALS)
            if not (info.num_pending or info.num_ack_pending):
                return
            await asyncio.sleep(0.02)


def outcomes(deciding: Approvals, outcome: str) -> float:
    """How many decisions ended with `outcome`, as the metric counts them."""
    (metric,) = deciding.metrics.outcomes.collect()
    return sum(
        s.value for s in metric.samples if s.name.endswith("_total") and s.labels["outcome"] == outcome
    )


async def decide(bus: Bus, decision: ApprovalDecision, *, msg_id: str | None = None) -> bool:
    """Publish a decision as the API does; True when JetStream stored it (not a duplicate)."""
    ack = await bus.streams.publish(
        topics.APPROVALS.at(decision.tenant),
        decision,
        msg_id=msg_id or topics.approval_msg_id(decision.task_id, decision.tenant),
    )
    return not ack.duplicate


async def test_park_stores_the_request_and_announces_the_wait_once(bus: Bus) -> None:
    event = await approvals.park(bus, request("t-park"), APPROVE, timeout_s=60, now=T0)
    again = await approvals.park(bus, request("t-park"), APPROVE, timeout_s=5, now=T0 + timedelta(seconds=9))

    assert again == event  # the first parking stays in force
    assert event.expires_at == T0 + timedelta(seconds=60)
    stored = await (await ParkedStore.open(bus.js)).load("t-park")
    assert stored is not None and stored[0].decided is None and stored[0].request == request("t-park")
    events = await wait_events(bus, "t-park", lambda es: len(es) >= 1)
    assert [type(e) for e in events] == [AwaitingApproval]
    assert isinstance(events[0], AwaitingApproval) and events[0].decision == APPROVE


async def test_a_rejection_is_applied_once_and_later_decisions_change_nothing(
    bus: Bus, serving: Approvals
) -> None:
    await approvals.park(bus, request("t-rej"), APPROVE, timeout_s=60)
    no = ApprovalDecision(task_id="t-rej", tenant="acme", approved=False, by="bob", reason="risky", at=T0)
    assert await decide(bus, no)
    assert not await decide(bus, no)  # the same decision slot: dropped by JetStream
    # Past the dedup window a second decision is stored, and the claimed entry refuses it.
    yes = ApprovalDecision(task_id="t-rej", tenant="acme", approved=True, by="alice", at=T0)
    assert await decide(bus, yes, msg_id="t-rej.later")

    await wait_events(bus, "t-rej", lambda es: bool(rejections(es)))
    await decisions_settled(bus)
    events = await history.read_events(bus.js, "t-rej")
    (rejected,) = rejections(events)
    assert (rejected.by, rejected.reason) == ("bob", "rejected by bob: risky")
    assert rejected.decision.verdict == "deny"
    assert [type(e).__name__ for e in events] == ["AwaitingApproval", "Rejected"]
    stored = await serving.store.load("t-rej")
    assert stored is not None and stored[0].decided is not None and stored[0].decided.by == "bob"


async def test_a_decision_under_another_tenant_is_refused_and_leaves_the_task_waiting(
    bus: Bus, serving: Approvals
) -> None:
    await approvals.park(bus, request("t-iso"), APPROVE, timeout_s=60)
    evil = ApprovalDecision(task_id="t-iso", tenant="evil", approved=True, by="mallory", at=T0)
    assert await decide(bus, evil)

    sub = await bus.js.pull_subscribe(topics.DLQ.subject(approvals.ORIGIN), stream=topics.STREAM_DLQ)
    (msg,) = await sub.fetch(1, timeout=10)
    letter = codec.decode(DeadLetter, msg.data)
    assert letter.reason == "rejected: no task t-iso awaits approval for tenant evil"
    stored = await serving.store.load("t-iso")
    assert stored is not None and stored[0].decided is None
    # The refused decision did not take the owner's decision slot.
    owner = ApprovalDecision(task_id="t-iso", tenant="acme", approved=False, by="bob", reason="no", at=T0)
    assert await decide(bus, owner)
    (rejected,) = rejections(await wait_events(bus, "t-iso", lambda es: bool(rejections(es))))
    assert rejected.by == "bob"


async def test_the_orchestrators_timeout_rejects_a_parked_task_like_a_human_rejection(
    bus: Bus, serving: Approvals
) -> None:
    await approvals.park(bus, request("t-late"), APPROVE, timeout_s=0.001, now=T0)
    # Sent as the orchestrator does when the timer comes due: the decisions' subject and dedup id.
    assert await decide(bus, timed_out("t-late"))
    # A human deciding too late finds the decision slot taken.
    assert not await decide(bus, ApprovalDecision(task_id="t-late", tenant="acme", approved=True, by="alice"))

    await wait_events(bus, "t-late", lambda es: bool(rejections(es)))
    await decisions_settled(bus)
    (rejected,) = rejections(await history.read_events(bus.js, "t-late"))
    assert (rejected.by, rejected.reason) == (APPROVAL_TIMEOUT_BY, "approval timed out")
    assert rejected.decision.verdict == "deny"
    assert rejected.decision.violations[-1].rule_id == "approval.timed-out"
    stored = await serving.store.load("t-late")
    assert stored is not None and stored[0].decided is not None
    assert (stored[0].decided.approved, stored[0].decided.by) == (False, APPROVAL_TIMEOUT_BY)
    assert (outcomes(serving, "timed_out"), outcomes(serving, "rejected")) == (1, 0)


async def test_a_decided_task_is_not_parked_again_by_a_late_redelivery_of_its_request(
    bus: Bus, serving: Approvals
) -> None:
    await approvals.park(bus, request("t-again"), APPROVE, timeout_s=60, now=T0)
    assert await decide(bus, timed_out("t-again"))
    await wait_events(bus, "t-again", lambda es: bool(rejections(es)))

    await approvals.park(bus, request("t-again"), APPROVE, timeout_s=60, now=T0 + timedelta(minutes=5))

    stored = await serving.store.load("t-again")
    assert stored is not None and stored[0].decided is not None and stored[0].parked_at == T0
    events = await history.read_events(bus.js, "t-again")
    assert [type(e).__name__ for e in events] == ["AwaitingApproval", "Rejected"]


async def test_the_sweep_forgets_old_decided_entries_and_never_times_out_a_waiting_one(
    bus: Bus, serving: Approvals
) -> None:
    await approvals.park(bus, request("t-done"), APPROVE, timeout_s=60, now=T0)
    await approvals.park(bus, request("t-waiting"), APPROVE, timeout_s=0.001, now=T0)
    no = ApprovalDecision(task_id="t-done", tenant="acme", approved=False, by="bob", at=T0)
    assert await decide(bus, no)
    await wait_events(bus, "t-done", lambda es: bool(rejections(es)))
    later = Approvals(
        bus,
        serving.store,
        serving.metrics,
        clock=lambda: T0 + approvals.DECIDED_RETENTION + timedelta(seconds=1),
    )

    forgotten = await later.sweep()

    assert [task_id for task_id, _ in forgotten] == ["t-done"]
    assert await serving.store.load("t-done") is None
    waiting = await serving.store.load("t-waiting")
    assert waiting is not None and waiting[0].decided is None
    # Past its deadline, the waiting task got no decision from the guard: that is the orchestrator's.
    assert (await bus.js.stream_info(topics.STREAM_APPROVALS)).state.last_seq == 1
