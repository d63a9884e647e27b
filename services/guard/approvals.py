"""Tasks that await a human: park them, act on the decision, forget the decided ones later.

A parked task lives in the `maestro_parked` bucket (key = task id) until one decision claims it by
compare-and-set; that claim is what makes the outcome single, whatever the number of guard replicas,
decisions or redeliveries. The claimed entry stays as a tombstone for a while (a redelivered request
must not park the task again) and the sweeper forgets it later. Budget is reserved only on approval.

The guard does not time approvals out: the orchestrator arms a timer at `expires_at` and, if the task
still awaits approval then, sends a rejection by APPROVAL_TIMEOUT_BY on the decisions' subject and dedup
id, which the guard applies like a human's.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from msgspec import structs
from nats.js import JetStreamContext
from nats.js.errors import APIError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from prometheus_client import CollectorRegistry, Counter

from maestro import codec, scan, topics
from maestro.bus import Bus
from maestro.deliveries import Consumer, Delivery
from maestro.errors import Reject, Retry
from maestro.tenant_labels import TenantLabels
from proto.v1 import (
    APPROVAL_TIMEOUT_BY,
    ApprovalDecision,
    AwaitingApproval,
    Decision,
    Parked,
    Rejected,
    Reservation,
    TaskRequest,
    Violation,
)
from services.guard import admission
from services.guard.awaiting import Awaiting, AwaitingGauges
from services.guard.awaiting import follow as follow_awaiting

log = logging.getLogger(__name__)

ORIGIN = "guard-approvals"
CONSUMER = Consumer(
    stream=topics.STREAM_APPROVALS,
    durable=topics.DURABLE_GUARD_APPROVALS,
    filter_subject=topics.APPROVALS.all,
    type=ApprovalDecision,
    origin=ORIGIN,
)
TIMEOUT_REASON = "approval timed out"
# Event slot of the outcome of a decision: "verdict" holds the AwaitingApproval already.
SLOT = "approval"
# Long past any redelivery of the request that parked the task (ack_wait x max_deliver, with backoff).
DECIDED_RETENTION = timedelta(hours=1)

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


# -- pure ----------------------------------------------------------------------------------------------
def forgettable(entries: Iterable[tuple[Parked, int]], now: datetime) -> list[tuple[str, int]]:
    """Task id and revision of each decided entry old enough to drop; undecided ones stay, past deadline
    or not (the orchestrator's timeout rejection decides them)."""
    return [
        (parked.request.id, revision)
        for parked, revision in entries
        if parked.decided is not None and (parked.decided.at or parked.parked_at) + DECIDED_RETENTION <= now
    ]


def same_decision(a: ApprovalDecision, b: ApprovalDecision) -> bool:
    """Whether two decisions say the same thing (a redelivery, or the same human twice)."""
    return (a.approved, a.by, a.reason) == (b.approved, b.by, b.reason)


def rejection_reason(decision: ApprovalDecision) -> str:
    """Why a parked task was rejected, in one line: who and why, or that the approval timed out."""
    if decision.by == APPROVAL_TIMEOUT_BY:
        return TIMEOUT_REASON
    who = f"rejected by {decision.by or 'someone'}"
    return f"{who}: {decision.reason}" if decision.reason else who


def refusal(parked: Parked, decision: ApprovalDecision) -> Decision:
    """The deny decision recorded when a human (or the orchestrator's timeout) rejects a parked task."""
    timed_out = decision.by == APPROVAL_TIMEOUT_BY
    return structs.replace(
        parked.decision,
        verdict="deny",
        violations=[
            *parked.decision.violations,
            Violation(
                policy="approval",
                rule_id="approval.timed-out" if timed_out else "approval.rejected",
                severity="medium",
                location="approval",
                message=rejection_reason(decision),
                fix="resubmit under a new id once the reason is addressed",
            ),
        ],
    )


# -- the bucket ----------------------------------------------------------------------------------------
class Claimed(Exception):
    """The parked entry changed since it was read: another decision (or replica) got there first."""


class ParkedStore:
    """The `maestro_parked` bucket: one Parked per task id, changed only by compare-and-set."""

    def __init__(self, kv: KeyValue, js: JetStreamContext) -> None:
        self._kv = kv
        self._js = js

    @classmethod
    async def open(cls, js: JetStreamContext) -> ParkedStore:
        """The store on the provisioned bucket."""
        return cls(await js.key_value(topics.BUCKET_PARKED), js)

    async def load(self, task_id: str) -> tuple[Parked, int] | None:
        """The parked task and its revision, or None."""
        try:
            entry = await self._kv.get(task_id)
        except KeyNotFoundError:
            return None
        if not entry.value or entry.revision is None:
            return None
        return codec.decode(Parked, entry.value), entry.revision

    async def create(self, parked: Parked) -> bool:
        """Park a task; False when it was parked already (the first one stays)."""
        try:
            await self._kv.create(parked.request.id, codec.encode(parked))
        except KeyWrongLastSequenceError:
            return False
        return True

    async def claim(self, parked: Parked, revision: int) -> int:
        """Store `parked` (now decided) if the entry is still at `revision`; raises Claimed otherwise."""
        try:
            return await self._kv.update(parked.request.id, codec.encode(parked), last=revision)
        except KeyWrongLastSequenceError:
            raise Claimed(parked.request.id) from None

    async def forget(self, task_id: str, revision: int) -> None:
        """Drop a decided entry unless it changed since `revision`."""
        with contextlib.suppress(KeyWrongLastSequenceError, APIError):
            await self._kv.delete(task_id, last=revision)

    async def scan(self, within: float = 30.0) -> list[tuple[Parked, int]]:
        """Every parked entry with its revision (entries that do not decode are skipped and logged)."""
        found: list[tuple[Parked, int]] = []
        async with asyncio.timeout(within):
            async for entry in scan.current_entries(self._js, topics.BUCKET_PARKED):
                try:
                    found.append((codec.decode(Parked, entry.value), entry.revision))
                except codec.DecodeError as exc:
                    log.error("parked entry %s does not decode: %s", entry.key, exc)
        return found


# -- parking (called by the guard's handler) --------------------------------------------------------------
async def park(
    bus: Bus,
    request: TaskRequest,
    decision: Decision,
    *,
    timeout_s: float,
    traceparent: str | None = None,
    now: datetime | None = None,
) -> AwaitingApproval:
    """Hold a request the verdict sends to a human and tell the task's watchers; reserves no budget.

    `request` is what would run (already redacted); `timeout_s` is the bundle's approval timeout. A
    request parked already keeps its first entry.
    """
    now = now or _utcnow()
    parked = Parked(
        request=request, decision=decision, parked_at=now, expires_at=now + timedelta(seconds=timeout_s)
    )
    store = await ParkedStore.open(bus.js)
    if not await store.create(parked):
        found = await store.load(request.id)
        if found is not None:
            parked = found[0]
    event = AwaitingApproval(
        task_id=request.id,
        tenant=request.tenant,
        at=parked.parked_at,
        decision=parked.decision,
        reason=admission.reason(parked.decision),
        expires_at=parked.expires_at,
    )
    if parked.decided is None:
        # Once decided, the outcome is stored already: announcing the wait again would only be refused.
        await bus.streams.publish(
            topics.EVENTS.at(request.tenant, request.id),
            event,
            msg_id=topics.event_msg_id(request.id, "verdict"),
            traceparent=traceparent,
        )
    log.info("awaiting approval: %s", event.reason, extra={"task_id": request.id, "tenant": request.tenant})
    return event


# -- deciding (the approvals consumer) and the sweeper of decided entries --------------------------------
@dataclass(frozen=True)
class ApprovalMetrics:
    """What became of the tasks that awaited a human."""

    outcomes: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> ApprovalMetrics:
        """Register the approval metrics on `registry`."""
        return cls(
            outcomes=Counter(
                "maestro_guard_approvals_total",
                "Decisions on parked tasks by outcome (approved, rejected, timed_out, over_budget, "
                "refused, stale)",
                ["outcome"],
                registry=registry,
            )
        )


@dataclass(frozen=True)
class Approvals:
    """Acts on decisions about parked tasks (a human's, or the orchestrator's timeout) and forgets them."""

    bus: Bus
    store: ParkedStore
    metrics: ApprovalMetrics
    clock: Clock = _utcnow

    async def handle(self, decision: ApprovalDecision, delivery: Delivery) -> None:
        """Queue an approved task or reject it; raises Reject when the decision names the wrong tenant."""
        context = {"task_id": decision.task_id, "tenant": decision.tenant}
        (subject_tenant,) = topics.APPROVALS.values(delivery.subject)
        found = await self.store.load(decision.task_id)
        if found is None:
            self.metrics.outcomes.labels("stale").inc()
            log.info("no parked task (decided long ago, or unknown); decision dropped", extra=context)
            return
        parked, revision = found
        if parked.request.tenant != decision.tenant or subject_tenant != decision.tenant:
            # Tenants are isolated: say nothing about whose task it is.
            self.metrics.outcomes.labels("refused").inc()
            raise Reject(f"no task {decision.task_id} awaits approval for tenant {subject_tenant}")
        if parked.decided is None:
            decided = decision if decision.at else structs.replace(decision, at=self.clock())
            try:
                await self.store.claim(structs.replace(parked, decided=decided), revision)
            except Claimed:
                raise Retry(0.05, f"task {decision.task_id} was decided concurrently") from None
            parked = structs.replace(parked, decided=decided)
        elif not same_decision(parked.decided, decision):
            self.metrics.outcomes.labels("stale").inc()
            log.info("already decided by %s; decision dropped", parked.decided.by, extra=context)
            return
        await self._act(parked, delivery.traceparent)

    async def _act(self, parked: Parked, traceparent: str | None) -> None:
        # Every step is idempotent (event and assignment dedup ids, the budget's per-task reservation),
        # so a redelivered decision that was claimed already finishes what a crash interrupted.
        assert parked.decided is not None
        decided, request = parked.decided, parked.request
        at = decided.at or self.clock()
        subject = topics.EVENTS.at(request.tenant, request.id)
        publish = functools.partial(
            self.bus.streams.publish,
            subject,
            msg_id=topics.event_msg_id(request.id, SLOT),
            traceparent=traceparent,
        )
        context = {"task_id": request.id, "tenant": request.tenant}
        if not decided.approved:
            refused = refusal(parked, decided)
            await publish(
                Rejected(
                    task_id=request.id,
                    tenant=request.tenant,
                    at=at,
                    decision=refused,
                    reason=rejection_reason(decided),
                    by=decided.by,
                )
            )
            timed_out = decided.by == APPROVAL_TIMEOUT_BY
            self.metrics.outcomes.labels("timed_out" if timed_out else "rejected").inc()
            log.info("rejected: %s", rejection_reason(decided), extra=context)
            return
        held = await admission.reserve(self.bus, request, parked.decision.estimate_micro_usd, 0)
        if isinstance(held, Reservation) and not held.granted:
            refused = admission.over_budget(request, parked.decision, held)
            await publish(
                Rejected(
                    task_id=request.id,
                    tenant=request.tenant,
                    at=at,
                    decision=refused,
                    reason=f"approved by {decided.by}, but {admission.reason(refused)}",
                )
            )
            self.metrics.outcomes.labels("over_budget").inc()
            return
        await admission.queue(
            self.bus,
            request,
            parked.decision,
            held,
            at=at,
            slot=SLOT,
            traceparent=traceparent,
            approved_by=decided.by,
            approval_reason=decided.reason,
        )
        self.metrics.outcomes.labels("approved").inc()
        log.info("approved by %s; queued", decided.by, extra=context)

    async def sweep(self) -> list[tuple[str, int]]:
        """Forget decided entries past their retention; returns the task ids and revisions dropped."""
        todo = forgettable(await self.store.scan(), self.clock())
        for task_id, revision in todo:
            await self.store.forget(task_id, revision)
        return todo

    async def sweep_forever(self, every_s: float) -> None:
        """Sweep every `every_s` seconds until cancelled; a failed sweep is logged and tried again."""
        while True:
            try:
                await self.sweep()
            except Exception as exc:
                log.warning("approval sweep failed: %r", exc)
            await asyncio.sleep(every_s)


async def serve(bus: Bus, tenant_label: TenantLabels) -> None:
    """Act on approval decisions and forget old decided entries until the bus stops; export what awaits a
    decision (tenants named by `tenant_label`)."""
    approvals = Approvals(bus, await ParkedStore.open(bus.js), ApprovalMetrics.create(bus.metrics.registry))
    waiting = Awaiting()
    bus.metrics.registry.register(AwaitingGauges(waiting, tenant_label, functools.partial(datetime.now, UTC)))
    async with asyncio.TaskGroup() as group:
        watch = group.create_task(follow_awaiting(bus, waiting), name="awaiting approval")
        sweeper = group.create_task(approvals.sweep_forever(bus.settings.approval_sweep_s))
        try:
            await bus.consumers.consume(CONSUMER, approvals.handle)
        finally:
            sweeper.cancel()
            watch.cancel()  # a watch waits for the next change, not for the stop
