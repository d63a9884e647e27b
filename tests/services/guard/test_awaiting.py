"""What awaits approval: counted per tenant with the oldest's wait, overdue ones, and followed live."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from msgspec import structs
from prometheus_client import CollectorRegistry

from maestro import codec
from maestro.bus import Bus
from maestro.tenant_labels import TenantLabels
from proto.v1 import ApprovalDecision, Decision, Parked, TaskRequest
from services.guard.approvals import ParkedStore
from services.guard.awaiting import Awaiting, AwaitingGauges, follow

T0 = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
APPROVE = Decision(verdict="approve", policy_version="test@1", policy_hash="abc")


def parked(task_id: str, tenant: str, since: datetime, expires: datetime | None = None) -> Parked:
    request = TaskRequest(id=task_id, tenant=tenant, role="implementer", prompt="install jq")
    return Parked(request=request, decision=APPROVE, parked_at=since, expires_at=expires)


def gauges(awaiting: Awaiting, now: datetime, named: int = 5) -> dict[tuple[str, str], float]:
    registry = CollectorRegistry()
    registry.register(AwaitingGauges(awaiting, TenantLabels(named), lambda: now))
    return {
        (sample.name, sample.labels.get("tenant", "")): sample.value
        for family in registry.collect()
        for sample in family.samples
    }


def test_undecided_tasks_are_counted_per_tenant_with_the_oldest_wait() -> None:
    awaiting = Awaiting()
    awaiting.offer("a1", codec.encode(parked("a1", "acme", T0)))
    awaiting.offer("a2", codec.encode(parked("a2", "acme", T0 + timedelta(minutes=5))))
    awaiting.offer("g1", codec.encode(parked("g1", "globex", T0 + timedelta(minutes=9))))
    awaiting.offer("i1", codec.encode(parked("i1", "initech", T0 + timedelta(minutes=1))))
    decided = ApprovalDecision(task_id="a3", tenant="acme", approved=True, by="alice", at=T0)
    awaiting.offer("a3", codec.encode(structs.replace(parked("a3", "acme", T0), decided=decided)))
    awaiting.offer("gone", codec.encode(parked("gone", "acme", T0)))
    awaiting.offer("gone", None)  # deleted: no longer waits

    now = T0 + timedelta(minutes=10)
    assert gauges(awaiting, now, named=2) == {
        ("maestro_approvals_waiting", "acme"): 2,
        ("maestro_approvals_waiting", "globex"): 1,
        ("maestro_approvals_waiting", "other"): 1,
        ("maestro_approvals_oldest_wait_seconds", "acme"): 600,
        ("maestro_approvals_oldest_wait_seconds", "globex"): 60,
        ("maestro_approvals_oldest_wait_seconds", "other"): 540,
        ("maestro_approvals_overdue", ""): 0,
    }


def test_a_task_undecided_past_its_time_out_and_the_grace_is_overdue() -> None:
    awaiting = Awaiting()
    awaiting.offer("late", codec.encode(parked("late", "acme", T0, expires=T0 + timedelta(minutes=1))))
    awaiting.offer("fine", codec.encode(parked("fine", "acme", T0, expires=T0 + timedelta(hours=1))))
    awaiting.offer("open", codec.encode(parked("open", "acme", T0)))  # no time-out: never overdue
    awaiting.offer("junk", b"not a parked entry")
    assert awaiting.overdue(T0 + timedelta(minutes=1, seconds=59)) == 0  # within the grace
    assert awaiting.overdue(T0 + timedelta(minutes=2, seconds=1)) == 1
    assert len(awaiting.waiting) == 3


async def test_follows_the_parked_bucket_as_tasks_are_parked_and_decided(bus: Bus) -> None:
    store = await ParkedStore.open(bus.js)
    await store.create(parked("p1", "acme", T0))
    awaiting = Told()
    following = asyncio.create_task(follow(bus, awaiting))
    try:
        await awaiting.until(lambda: set(awaiting.waiting) == {"p1"})
        await store.create(parked("p2", "globex", T0))
        await awaiting.until(lambda: set(awaiting.waiting) == {"p1", "p2"})
        loaded = await store.load("p1")
        assert loaded is not None
        entry, revision = loaded
        decision = ApprovalDecision(task_id="p1", tenant="acme", approved=False, by="bob", at=T0)
        await store.claim(structs.replace(entry, decided=decision), revision)
        await awaiting.until(lambda: set(awaiting.waiting) == {"p2"})
    finally:
        following.cancel()


class Told(Awaiting):
    """Awaiting that says when it was offered an entry, so a test waits on the watch, not on a clock."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = asyncio.Event()

    def offer(self, task_id: str, value: bytes | None, _revision: int = 0) -> None:
        super().offer(task_id, value, _revision)
        self.changed.set()

    async def until(self, condition: Callable[[], bool], within: float = 5.0) -> None:
        async with asyncio.timeout(within):
            while not condition():
                self.changed.clear()
                await self.changed.wait()
