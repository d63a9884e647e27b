"""Parked tasks: what the sweeper decides (pure); parking, deciding and timing out on a real nats-server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry

from maestro import codec, history, topics
from maestro.bus import Bus
from proto.v1 import (
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


# -- pure --------------------------------------------------------------------------------------------
def test_due_rejects_only_undecided_entries_past_their_deadline() -> None:
    entries = [
        (parked("t-past", expires=T0 - timedelta(seconds=1)), 1),
        (parked("t-now", expires=T0), 2),
        (parked("t-future", expires=T0 + timedelta(seconds=1)), 3),
        (parked("t-never", expires=None), 4),
        (parked("t-decided", expires=T0 - timedelta(hours=9), decided=decided_at(T0)), 5),
    ]
    sweep = approvals.due(entries, T0)
    assert [p.request.id for p in sweep.expired] == ["t-past", "t-now"]
    assert sweep.forget == []


def test_due_forgets_decided_entries_once_the_retention_passed() -> None:
    old = (parked("t-old", decided=decided_at(T0 - approvals.DECIDED_RETENTION)), 7)
    recent = (parked("t-recent", decided=decided_at(T0 - timedelta(minutes=1))), 8)
    assert approvals.due([old, recent], T0).forget == [("t-old", 7)]


def test_a_timeout_is_a_rejection_that_says_so() -> None:
    decision = approvals.timeout_decision(parked(), T0)
    assert (decision.approved, decision.by, decision.at) == (False, approvals.TIMEOUT_BY, T0)
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
    task = asyncio.create_task(bus.consume(approvals.CONSUMER, deciding.handle))
    try:
        yield deciding
    finally:
        bus.stop()
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


async def decide(bus: Bus, decision: ApprovalDecision, *, msg_id: str | None = None) -> bool:
    """Publish a decision as the API does; True when JetStream stored it (not a duplicate)."""
    ack = await bus.publish(
        topics.APPROVALS.subject(decision.tenant),
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

    events = await wait_events(bus, "t-rej", lambda es: bool(rejections(es)))
    info = await bus.js.consumer_info(topics.STREAM_APPROVALS, topics.DURABLE_GUARD_APPROVALS)
    async with asyncio.timeout(10):
        while info.num_pending or info.num_ack_pending:
            await asyncio.sleep(0.02)
            info = await bus.js.consumer_info(topics.STREAM_APPROVALS, topics.DURABLE_GUARD_APPROVALS)
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


async def test_replicas_sweeping_at_once_reject_a_timed_out_task_once(bus: Bus, serving: Approvals) -> None:
    await approvals.park(bus, request("t-late"), APPROVE, timeout_s=0.001, now=T0)
    await approvals.park(bus, request("t-early"), APPROVE, timeout_s=3600)
    replicas = [
        Approvals(bus, serving.store, serving.metrics, clock=lambda: T0 + timedelta(seconds=1))
        for _ in range(3)
    ]

    sweeps = await asyncio.gather(*(r.sweep() for r in replicas))

    # A replica that scans after the first rejection was applied finds the task decided already.
    assert {p.request.id for s in sweeps for p in s.expired} == {"t-late"}
    events = await wait_events(bus, "t-late", lambda es: bool(rejections(es)))
    (rejected,) = rejections(events)
    assert (rejected.by, rejected.reason) == (approvals.TIMEOUT_BY, "approval timed out")
    assert rejected.decision.violations[-1].rule_id == "approval.timed-out"
    assert rejections(await history.read_events(bus.js, "t-early")) == []
    # Swept again later (after the dedup window too): the entry is decided, nothing more happens.
    assert (await replicas[0].sweep()).expired == []
