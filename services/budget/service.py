"""The budget service: reserve, commit, release, get and set over request/reply, one ledger per tenant in KV.

The ledgers (services/budget/store.py) hold no state that matters in memory: any number of replicas
serve the same tenants, and one may be killed at any moment. Callers that name the tenant reach the
replica owning its partition (services/budget/partitions.py), which only saves conflicts.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from maestro import pricing, topics
from maestro.bus import Bus
from maestro.errors import Backpressure, NotFound, Reject
from maestro.runtime import Service
from proto.v1 import Commit, GetLedger, LedgerView, Release, Reservation, Reserve, SetBudget, Settlement
from services.budget.ledger import Answer, Busy, Refused, Unknown
from services.budget.metrics import BudgetMetrics
from services.budget.partitions import Ping, ownership
from services.budget.sampler import Samples, run_sampler
from services.budget.store import Clock, Ledgers
from services.budget.sweeper import run_sweeper

log = logging.getLogger(__name__)

VERSION = "0.5.0"


def _refused(answer: Answer, tenant: str) -> None:
    """Raise Reject (400) when the ledger refused the operation as one it cannot take."""
    if isinstance(answer, Refused):
        log.info(answer.reason, extra={"tenant": tenant})
        raise Reject(answer.reason)


@dataclass(frozen=True)
class Budget:
    """The endpoint handlers: each turns one request into an operation on its tenant's ledger, and marks the
    tenants whose ledgers the changes touch for the next spend samples."""

    ledgers: Ledgers
    samples: Samples

    async def reserve(self, req: Reserve) -> Reservation:
        """Hold the estimate for one attempt of a task, or refuse with the amounts that do not fit; a
        workflow's step naming its escrow hold draws from it first (reservations.py).

        Raises Backpressure (429) when the tenant's ledger holds as many open reservations as it has room for:
        that is backpressure, not a verdict on the money. Raises Reject (400) when the hold would take what
        the tenant holds past the bound on money or tokens."""
        answer = await self.ledgers.submit(req.tenant, req)
        self.samples.mark(req.tenant)
        _refused(answer, req.tenant)
        if isinstance(answer, Busy):
            log.info(
                answer.reason, extra={"tenant": req.tenant, "task_id": req.task_id, "attempt": req.attempt}
            )
            raise Backpressure(answer.retry_after_s, answer.reason)
        assert isinstance(answer, Reservation)
        if not answer.granted:
            log.info(
                answer.reason, extra={"tenant": req.tenant, "task_id": req.task_id, "attempt": req.attempt}
            )
        return answer

    async def commit(self, req: Commit) -> Settlement:
        """Charge a reservation its usage at the configured prices and release the rest of the hold.

        A repeated commit answers already_settled with what the first one charged; a commit after the hold
        expired is charged all the same and marked late. Raises NotFound (404) for a reservation the ledger
        does not know, and Reject (400) for a usage that would take what was spent past the bound on money
        or tokens."""
        answer = await self.ledgers.submit(req.tenant, req)
        self.samples.mark(req.tenant)
        _refused(answer, req.tenant)
        if isinstance(answer, Unknown):
            log.warning(answer.reason, extra={"tenant": req.tenant})
            raise NotFound(answer.reason)
        assert isinstance(answer, Settlement)
        if answer.late:
            log.warning(answer.reason, extra={"tenant": req.tenant})
        return answer

    async def release(self, req: Release) -> Settlement:
        """Give a reservation's hold back."""
        answer = await self.ledgers.submit(req.tenant, req)
        self.samples.mark(req.tenant)
        assert isinstance(answer, Settlement)
        return answer

    async def get(self, req: GetLedger) -> LedgerView:
        """A tenant's ledger as of the latest write."""
        answer = await self.ledgers.submit(req.tenant, req)
        assert isinstance(answer, LedgerView)
        return answer

    async def set(self, req: SetBudget) -> LedgerView:
        """Change a tenant's limits; written into its ledger, so every replica applies it from the next
        operation on. Raises Reject when a role or model scope names nothing, a role scope names no role,
        or a model sub-limit would be one more than a ledger keeps."""
        answer = await self.ledgers.submit(req.tenant, req)
        self.samples.mark(req.tenant)
        _refused(answer, req.tenant)
        assert isinstance(answer, LedgerView)
        log.info("budget of %s changed: %s", req.tenant, req, extra={"tenant": req.tenant})
        return answer


async def serve_budget(bus: Bus, clock: Clock = time.time, ping: Ping | None = None) -> None:
    """Answer the budget endpoints, sweep expired holds and sample spend until the bus stops; queued
    operations finish, and the last spend samples are published.

    `ping` names the live replicas that share the tenants' partitions (default: who answers the ping).
    """
    kv = await bus.js.key_value(topics.BUCKET_BUDGET)
    metrics = BudgetMetrics.create(bus.metrics.registry)
    prices = pricing.from_settings(bus.settings)
    async with asyncio.TaskGroup() as group:
        ledgers = Ledgers(bus, kv, prices, metrics, group, clock)
        budget = Budget(ledgers, Samples())
        sweeper = group.create_task(run_sweeper(bus.js, kv, ledgers, clock, bus.settings.budget_sweep_s))
        sampler = group.create_task(
            run_sampler(bus, budget.samples, _reader(budget), clock, bus.settings.budget_sample_s)
        )
        endpoints: list[tuple[topics.Endpoint[Any, Any], Callable[[Any], Awaitable[Any]]]] = [
            (topics.BUDGET_RESERVE, budget.reserve),
            (topics.BUDGET_COMMIT, budget.commit),
            (topics.BUDGET_RELEASE, budget.release),
            (topics.BUDGET_GET, budget.get),
            (topics.BUDGET_SET, budget.set),
        ]
        owned = ownership(
            functools.partial(bus.calls.service_id, topics.BUDGET_SERVICE),
            ping or functools.partial(bus.discovery.live_instances, topics.BUDGET_SERVICE),
            topics.BUDGET_PARTITIONS,
        )
        # A tenant's requests go to the one replica that owns its partition, so its writes group-commit
        # there instead of racing another replica's compare-and-set; the public subjects serve the rest.
        group.create_task(bus.calls.serve_partitions(topics.BUDGET_SERVICE, endpoints, owned))
        try:
            await bus.calls.serve(topics.BUDGET_SERVICE, VERSION, endpoints)
        finally:
            sweeper.cancel()
            if not bus.lifetime.stopping:  # serving failed: no last samples
                sampler.cancel()


def _reader(budget: Budget) -> Callable[[str], Awaitable[LedgerView]]:
    """A tenant's ledger read as the `get` endpoint answers it, for the spend samples."""

    async def read(tenant: str) -> LedgerView:
        return await budget.get(GetLedger(tenant=tenant))

    return read


async def serve(bus: Bus) -> None:
    """The service's entry: the budget on the wall clock."""
    await serve_budget(bus)


SERVICE = Service(name="budget", default_port=9102, serve=serve)
