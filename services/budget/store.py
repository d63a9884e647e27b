"""The tenants' ledgers in the KV bucket: one group-committing writer per tenant, compare-and-set on revision.

Every write is a compare-and-set on the entry's revision, so any number of replicas may serve the same
tenant. An entry deleted or purged from the bucket by hand is read as absent and written over its marker's
revision, with a warning and maestro_budget_ledgers_recreated_total: the tenant starts afresh with the
default limit instead of being locked out (a write expecting no entry at all would lose every
compare-and-set to the marker). What the removed entry held and spent is gone with it: commits for its
reservations are answered 404.

Inside one replica, operations on a tenant are group-committed: they queue up while a write is in flight,
and one writer per tenant applies everything queued with the pure ledger functions and writes once. A
hot tenant then costs one KV round trip per batch instead of one per operation.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import nats.errors
from nats.js.errors import InvalidKeyError, KeyNotFoundError
from nats.js.kv import KeyValue

from maestro import codec, topics
from maestro.bus import Bus
from maestro.errors import Reject, Retry, WrongRevision
from maestro.pricing import PriceTable
from maestro.settings import Settings
from proto.v1 import (
    BudgetEvents,
    HoldExpired,
    LateCommit,
    LedgerRecreated,
    Overage,
    Reservation,
    SpendSampled,
    ThresholdCrossed,
    WindowRolled,
)
from services.budget.ledger import (
    Answer,
    Applied,
    Busy,
    Ledger,
    Operation,
    Summary,
    apply,
    encoded,
    new_ledger,
)
from services.budget.metrics import BudgetMetrics
from services.budget.sampler import sample_msg_id

log = logging.getLogger(__name__)

Clock = Callable[[], float]
"""Epoch seconds now; injected so tests can cross a window's end."""

# Conflicting writers re-read and re-apply; each lost race means another replica made progress, so
# this many losses in a row means something is wrong and the caller is told to retry later.
_MAX_ATTEMPTS = 50
# After losing a compare-and-set on a tenant with more operations queued, a writer waits this long (x0.5 to
# x1.5, at random) before it re-reads: the replica that won usually has its next batch ready and, its copy
# being fresh, lands it, while the loser gathers a bigger batch. Re-reading at once made two replicas on one
# hot tenant alternate, nearly every write losing once (bench/budget: 0.7 conflicts per write, then ~0.4).
# Since callers route each tenant to one replica (partitions.py) races are rare; this covers the moments
# when ownership moves and callers that do not route.
# There is no write pacing: with compact entries (ledger.py) it only added latency (measured).
_CONFLICT_BACKOFF_S = 0.001


def event_msg_id(event: BudgetEvents) -> str:
    """The dedup id of a budget event, so a retried publish stores it once."""
    match event:
        case HoldExpired(reservation_id=rid):
            return f"{event.tenant}.{rid}.expired"
        case Overage(reservation_id=rid):
            return f"{event.tenant}.{rid}.overage"
        case LateCommit(reservation_id=rid):
            return f"{event.tenant}.{rid}.late"
        case ThresholdCrossed(scope=scope, percent=pct):
            return f"{event.tenant}.{event.window_id}.{scope}.{pct}"
        case WindowRolled():
            return f"{event.tenant}.{event.window_id}.rolled"
        case LedgerRecreated(removed_revision=revision):
            return f"{event.tenant}.recreated.{revision}"
        case SpendSampled():
            return sample_msg_id(event)


@dataclass(frozen=True)
class _Read:
    """A tenant's ledger as read, at the revision to write over; `removed` names a delete or purge marker;
    `summary`, what the batch that wrote it knew of its holds (ledger.Summary)."""

    ledger: Ledger
    revision: int
    removed: str = ""
    summary: Summary | None = None


@dataclass
class _Pending:
    operation: Operation
    answer: asyncio.Future[Answer] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class Ledgers:
    """The tenants' ledgers in the KV bucket, written by one group-committing writer per tenant."""

    def __init__(
        self,
        bus: Bus,
        kv: KeyValue,
        pricing: PriceTable,
        metrics: BudgetMetrics,
        group: asyncio.TaskGroup,
        clock: Clock = time.time,
    ) -> None:
        self._bus = bus
        self._kv = kv
        self._settings: Settings = bus.settings
        self._pricing = pricing
        self._metrics = metrics
        self._group = group
        self._clock = clock
        self._queues: dict[str, list[_Pending]] = {}
        # Only a hint: a stale entry costs one failed compare-and-set, never a wrong answer.
        self._cache: dict[str, _Read] = {}

    def busy(self, tenant: str) -> bool:
        """Whether this replica has operations on the tenant in flight (its holds expire on that touch)."""
        return tenant in self._queues

    async def submit(self, tenant: str, operation: Operation) -> Answer:
        """Queue an operation on a tenant's ledger and wait for the answer from the write that holds it.

        Raises Retry when the ledger cannot be read or written right now.
        """
        pending = _Pending(operation)
        queue = self._queues.get(tenant)
        if queue is None:
            queue = self._queues[tenant] = []
            self._group.create_task(self._write_loop(tenant), name=f"budget-{tenant}")
        queue.append(pending)
        return await pending.answer

    async def _write_loop(self, tenant: str) -> None:
        # Started on the next turn of the loop, so operations that arrived together form the first batch.
        while self._queues[tenant]:
            await self._write_batch(tenant)
        del self._queues[tenant]

    async def _write_batch(self, tenant: str) -> None:
        batch = self._queues[tenant]
        self._queues[tenant] = []
        try:
            applied = await self._apply(tenant, [p.operation for p in batch])
        except Exception as exc:
            self._cache.pop(tenant, None)
            self._fail(tenant, batch, exc)
            return
        for p, answer in zip(batch, applied.answers, strict=True):
            if not p.answer.done():
                p.answer.set_result(answer)
        if applied.events:
            await self._publish(applied.events)

    def _fail(self, tenant: str, batch: list[_Pending], exc: Exception) -> None:
        failure: Exception = exc
        if isinstance(exc, nats.errors.BadSubjectError | InvalidKeyError):
            # The tenant cannot be a key: the same request would fail the same way however often sent.
            failure = Reject(f"tenant {tenant!r} cannot name a ledger in the bucket: {exc!r}")
        elif isinstance(exc, TimeoutError | nats.errors.Error):
            # NATS is unreachable or slow (a write may or may not have landed): callers retry, which is safe.
            log.warning("ledger of %s not written: %r", tenant, exc, extra={"tenant": tenant})
            failure = Retry(0.5, f"ledger of {tenant} unavailable: {exc!r}")
        elif not isinstance(exc, Retry):
            log.error("ledger of %s failed", tenant, exc_info=exc, extra={"tenant": tenant})
        for p in batch:
            if not p.answer.done():
                p.answer.set_exception(failure)

    async def _apply(self, tenant: str, operations: list[Operation]) -> Applied:
        cached = self._cache.get(tenant)
        fresh = cached is None
        if cached is None:
            cached = await self._read(tenant)
        for _ in range(_MAX_ATTEMPTS):
            applied = apply(cached.ledger, operations, self._clock(), self._pricing, cached.summary)
            if not applied.changed:
                if fresh:
                    cached = dataclasses.replace(cached, summary=applied.summary)  # of the same ledger
                    break
                # Answers that change nothing (reads, refusals, repeats) must come from the latest entry.
                cached, fresh = await self._read(tenant), True
                continue
            try:
                revision = await self._write(tenant, encoded(applied), cached.revision)
                written = _Read(applied.ledger, revision, summary=applied.summary)
                self._metrics.writes.inc()
            except WrongRevision:
                self._metrics.cas_conflicts.inc()
                if self._queues.get(tenant):  # a hot tenant (a stale copy of a quiet one: re-read at once)
                    await asyncio.sleep(_CONFLICT_BACKOFF_S * random.uniform(0.5, 1.5))
                cached, fresh = await self._read(tenant), True
                continue
            if cached.removed:
                applied.events.append(self._recreated(tenant, cached, applied.ledger))
            cached = written
            break
        else:
            raise Retry(0.05, f"ledger of {tenant}: {_MAX_ATTEMPTS} conflicting writes in a row")
        self._cache[tenant] = cached
        self._metrics.observe(cached.ledger)
        self._count(tenant, applied)
        return applied

    async def _read(self, tenant: str) -> _Read:
        try:
            entry = await self._kv.get(tenant)
        except KeyNotFoundError as exc:
            marker = exc.entry  # set when the key was deleted or purged: its marker holds the revision
            if marker is None or not marker.revision:
                return _Read(new_ledger(tenant, self._settings), 0)
            return _Read(new_ledger(tenant, self._settings), marker.revision, str(exc.op or "DEL"))
        revision = entry.revision or 0
        known = self._cache.get(tenant)
        if known is not None and known.revision == revision and not known.removed:
            # The entry this replica last wrote or read (a revision names one value): decoding it again would
            # give the same ledger, at a cost that grows with its holds (~0.3 ms with 1,500 of them).
            return known
        return _Read(codec.decode(Ledger, entry.value or b""), revision)

    def _recreated(self, tenant: str, removed: _Read, fresh: Ledger) -> LedgerRecreated:
        """Say that a fresh ledger was written over a removed one: a log line, a metric, and its event."""
        log.warning(
            "ledger of %s had been removed from %s (%s at revision %d): started afresh, default limit",
            tenant,
            topics.BUCKET_BUDGET,
            removed.removed,
            removed.revision,
            extra={"tenant": tenant},
        )
        self._metrics.recreated.labels(tenant).inc()
        return LedgerRecreated(
            tenant=tenant,
            at=datetime.now(UTC),
            window_id=fresh.window_id,
            removed_by="PURGE" if removed.removed == "PURGE" else "DEL",
            removed_revision=removed.revision,
        )

    async def _write(self, tenant: str, entry: bytes, revision: int) -> int:
        return await self._bus.streams.compare_and_set(topics.BUCKET_BUDGET, tenant, entry, revision)

    async def _publish(self, events: list[BudgetEvents]) -> None:
        # After the write: an event is published only for a change that landed. A replica killed between
        # the two loses the event (the ledger, which is the truth, has the change); a retried publish is
        # stored once thanks to its msg id.
        for event in events:
            try:
                await self._bus.streams.publish(
                    topics.BUDGET_EVENTS.at(event.tenant), event, msg_id=event_msg_id(event)
                )
                self._metrics.events.labels(str(event.__struct_config__.tag)).inc()
            except Exception as exc:
                log.warning("budget event not published: %r", exc, extra={"tenant": event.tenant})

    def _count(self, tenant: str, applied: Applied) -> None:
        for answer in applied.answers:
            if isinstance(answer, Reservation):
                self._metrics.reservations.labels(tenant, "granted" if answer.granted else "refused").inc()
            elif isinstance(answer, Busy):
                self._metrics.backpressure.labels(tenant).inc()
        for event in applied.events:
            if isinstance(event, HoldExpired):
                self._metrics.expirations.labels(tenant).inc()
