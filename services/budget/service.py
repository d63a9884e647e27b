"""The budget service: reserve, commit, release and get over request/reply, one ledger per tenant in KV.

Every write is a compare-and-set on the entry's revision, so any number of replicas may serve the same
tenant. Inside one replica, operations on a tenant are group-committed: they queue up while a write is
in flight, and one writer per tenant applies everything queued with the pure ledger functions and
writes once. A hot tenant then costs one KV round trip per batch instead of one per operation.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

import nats.errors
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from prometheus_client import CollectorRegistry, Counter

from maestro import codec, runtime, topics
from maestro.bus import Bus
from maestro.errors import Retry
from maestro.runtime import Service
from maestro.settings import Settings
from proto.v1 import Commit, GetLedger, LedgerView, Release, Reservation, Reserve, Settlement
from services.budget.ledger import Answer, Charge, Ledger, Operation, apply, cost, new_ledger

log = logging.getLogger(__name__)

VERSION = "0.1.0"
# Conflicting writers re-read and re-apply; each lost race means another replica made progress, so
# this many losses in a row means something is wrong and the caller is told to retry later.
_MAX_ATTEMPTS = 50
# A tenant's ledger is written whole (its holds and recently settled ids: 100 KB and more on a busy
# tenant). Under load, one tenant's writer paces its writes to about this many bytes per second and lets
# operations gather meanwhile: bigger batches and far less for the server to store, for a few ms of
# latency only when busy (at 1,000 tasks/s the server's CPU for budget writes drops by about half).
_WRITE_BYTES_PER_S = 20_000_000


@dataclass(frozen=True)
class BudgetMetrics:
    """What the budget did: reservations granted or refused, and writes that lost a compare-and-set."""

    reservations: Counter
    cas_conflicts: Counter
    writes: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> BudgetMetrics:
        """Register the budget's metrics on `registry`."""
        return cls(
            reservations=Counter(
                "maestro_budget_reservations_total",
                "Reservations answered, by outcome (granted, refused)",
                ["outcome"],
                registry=registry,
            ),
            cas_conflicts=Counter(
                "maestro_budget_cas_conflicts_total",
                "Ledger writes refused because another writer changed the entry first",
                registry=registry,
            ),
            writes=Counter(
                "maestro_budget_ledger_writes_total",
                "Ledger writes that landed (one per group-committed batch of operations)",
                registry=registry,
            ),
        )


@dataclass
class _Pending:
    operation: Operation
    answer: asyncio.Future[Answer] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class Ledgers:
    """The tenants' ledgers in the KV bucket, written by one group-committing writer per tenant."""

    def __init__(
        self, kv: KeyValue, settings: Settings, metrics: BudgetMetrics, group: asyncio.TaskGroup
    ) -> None:
        self._kv = kv
        self._settings = settings
        self._metrics = metrics
        self._group = group
        self._queues: dict[str, list[_Pending]] = {}
        self._next_write: dict[str, float] = {}
        # Only a hint: a stale entry costs one failed compare-and-set, never a wrong answer.
        self._cache: dict[str, tuple[Ledger, int]] = {}

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
        while True:
            if not self._queues[tenant]:
                del self._queues[tenant]
                return
            wait = self._next_write.get(tenant, 0.0) - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            batch = self._queues[tenant]
            self._queues[tenant] = []
            try:
                answers = await self._apply(tenant, [p.operation for p in batch])
            except Exception as exc:
                self._cache.pop(tenant, None)
                self._fail(tenant, batch, exc)
                continue
            for p, answer in zip(batch, answers, strict=True):
                if not p.answer.done():
                    p.answer.set_result(answer)

    def _fail(self, tenant: str, batch: list[_Pending], exc: Exception) -> None:
        failure: Exception = exc
        if isinstance(exc, TimeoutError | nats.errors.Error):
            # NATS is unreachable or slow (a write may or may not have landed): callers retry, which is safe.
            log.warning("ledger of %s not written: %r", tenant, exc, extra={"tenant": tenant})
            failure = Retry(0.5, f"ledger of {tenant} unavailable: {exc!r}")
        elif not isinstance(exc, Retry):
            log.error("ledger of %s failed", tenant, exc_info=exc, extra={"tenant": tenant})
        for p in batch:
            if not p.answer.done():
                p.answer.set_exception(failure)

    async def _apply(self, tenant: str, operations: list[Operation]) -> list[Answer]:
        cached = self._cache.get(tenant)
        fresh = cached is None
        if cached is None:
            cached = await self._read(tenant)
        for _ in range(_MAX_ATTEMPTS):
            ledger, revision = cached
            updated, answers, changed = apply(ledger, operations, time.time())
            if not changed:
                if fresh:
                    break
                # Answers that change nothing (reads, refusals, repeats) must come from the latest entry.
                cached, fresh = await self._read(tenant), True
                continue
            try:
                cached = updated, await self._write(tenant, updated, revision)
                self._metrics.writes.inc()
                break
            except KeyWrongLastSequenceError:
                self._metrics.cas_conflicts.inc()
                cached, fresh = await self._read(tenant), True
        else:
            raise Retry(0.05, f"ledger of {tenant}: {_MAX_ATTEMPTS} conflicting writes in a row")
        self._cache[tenant] = cached
        self._count(answers)
        return answers

    async def _read(self, tenant: str) -> tuple[Ledger, int]:
        try:
            entry = await self._kv.get(tenant)
        except KeyNotFoundError:
            return new_ledger(tenant, self._settings), 0
        return codec.decode(Ledger, entry.value or b""), entry.revision or 0

    async def _write(self, tenant: str, ledger: Ledger, revision: int) -> int:
        data = codec.encode(ledger)
        self._next_write[tenant] = time.monotonic() + len(data) / _WRITE_BYTES_PER_S
        if revision == 0:
            return await self._kv.create(tenant, data)
        return await self._kv.update(tenant, data, last=revision)

    def _count(self, answers: list[Answer]) -> None:
        for answer in answers:
            if isinstance(answer, Reservation):
                self._metrics.reservations.labels("granted" if answer.granted else "refused").inc()


@dataclass(frozen=True)
class Budget:
    """The endpoint handlers: each turns one request into an operation on its tenant's ledger."""

    ledgers: Ledgers
    settings: Settings

    async def reserve(self, req: Reserve) -> Reservation:
        """Hold the estimate for a task, or refuse with the amounts that do not fit."""
        answer = await self.ledgers.submit(req.tenant, req)
        assert isinstance(answer, Reservation)
        if not answer.granted:
            log.info(answer.reason, extra={"tenant": req.tenant, "task_id": req.task_id})
        return answer

    async def commit(self, req: Commit) -> Settlement:
        """Charge a reservation its usage at the configured prices and release the rest of the hold."""
        answer = await self.ledgers.submit(req.tenant, Charge(req, cost(req.usage, self.settings)))
        assert isinstance(answer, Settlement)
        return answer

    async def release(self, req: Release) -> Settlement:
        """Give a reservation's hold back."""
        answer = await self.ledgers.submit(req.tenant, req)
        assert isinstance(answer, Settlement)
        return answer

    async def get(self, req: GetLedger) -> LedgerView:
        """A tenant's ledger as of the latest write."""
        answer = await self.ledgers.submit(req.tenant, req)
        assert isinstance(answer, LedgerView)
        return answer


async def serve(bus: Bus) -> None:
    """Answer the budget endpoints until bus.stop(); queued operations are written before returning."""
    kv = await bus.js.key_value(topics.BUCKET_BUDGET)
    metrics = BudgetMetrics.create(bus.metrics.registry)
    async with asyncio.TaskGroup() as group:
        budget = Budget(Ledgers(kv, bus.settings, metrics, group), bus.settings)
        await bus.serve(
            topics.BUDGET_SERVICE,
            VERSION,
            [
                (topics.BUDGET_RESERVE, budget.reserve),
                (topics.BUDGET_COMMIT, budget.commit),
                (topics.BUDGET_RELEASE, budget.release),
                (topics.BUDGET_GET, budget.get),
            ],
        )


SERVICE = Service(name="budget", default_port=9102, serve=serve)


def main() -> None:
    """`python -m services.budget`."""
    runtime.main(SERVICE)
