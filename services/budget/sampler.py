"""Spend samples: each budget replica publishes, every MAESTRO_BUDGET_SAMPLE_S, a budget.sampled event of each
tenant whose ledger it changed since it last sampled it, for the console's chart of spend over time.

The hot path only marks a tenant (Samples.mark, a set insert). Once an interval, in its middle, the loop
reads each marked tenant's ledger through the replica's own queue (a GetLedger, as the endpoint answers it)
and publishes it unless it equals the last sample it published of that tenant. Every replica samples in the
middle of the same intervals (numbered from the epoch), and a sample's msg id names its tenant, window and
interval: two replicas that both changed a tenant (ownership moving, callers that do not route), or a publish
retried, store one sample.

A tenant whose last sample held money is read again each interval though nothing marked it: its holds expire
with no operation on it (and the read releases them, as the sweeper's touch does). What a replica killed
outright had marked and not sampled yet shows at the tenant's next change; one that stops samples first.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from maestro import topics
from maestro.bus import Bus
from proto.v1 import LedgerView, SpendSampled
from services.budget.entry import effective_limit

log = logging.getLogger(__name__)

Read = Callable[[str], Awaitable[LedgerView]]
"""A tenant's ledger as of the latest write."""

_LAST_ROUND_S = 5.0
"""How long the round a stopping replica samples in may take before it is given up."""


def interval_of(at: float, every_s: float) -> int:
    """The number of the sampling interval, `every_s` seconds long from the epoch, that the instant `at`
    (epoch seconds) falls in."""
    return math.floor(at / every_s)


def next_round_at(now: float, every_s: float) -> float:
    """When the next round samples: the middle of the interval `now` falls in, or of the next one when that
    has passed. The middle, so replicas whose clocks differ by less than half an interval agree on it."""
    middle = (interval_of(now, every_s) + 0.5) * every_s
    return middle if middle > now else middle + every_s


def sample_of(view: LedgerView, at: float, every_s: float) -> SpendSampled:
    """The sample of a tenant's ledger read in the round at `at`."""
    return SpendSampled(
        tenant=view.tenant,
        at=datetime.fromtimestamp(at, UTC),
        window_id=view.window_id,
        spent_micro_usd=view.spent_micro_usd,
        held_micro_usd=view.held_micro_usd,
        limit_micro_usd=effective_limit(view.limit_micro_usd, view.carried_micro_usd),
        remaining_micro_usd=view.remaining_micro_usd,
        spent_tokens=view.spent_tokens,
        held_tokens=view.held_tokens,
        interval_s=every_s,
    )


def sample_msg_id(sample: SpendSampled) -> str:
    """The dedup id of a sample: one per tenant, window and interval."""
    interval = interval_of(sample.at.timestamp(), sample.interval_s)
    return topics.sample_msg_id(sample.tenant, sample.window_id, interval)


def _level(sample: SpendSampled) -> tuple[str, int, int, int, int, int, int]:
    return (
        sample.window_id,
        sample.spent_micro_usd,
        sample.held_micro_usd,
        sample.limit_micro_usd,
        sample.remaining_micro_usd,
        sample.spent_tokens,
        sample.held_tokens,
    )


class Samples:
    """Which tenants one replica changed since it last sampled them, and the last sample it published of
    each. No I/O."""

    def __init__(self) -> None:
        self._marked: set[str] = set()
        self._last: dict[str, SpendSampled] = {}

    def mark(self, tenant: str) -> None:
        """Note that this replica may have changed the tenant's ledger."""
        self._marked.add(tenant)

    def due(self) -> list[str]:
        """The tenants to read this round, in order: those marked (the marks are cleared), and those whose
        last sample held money."""
        due = self._marked | {tenant for tenant, last in self._last.items() if last.held_micro_usd}
        self._marked = set()
        return sorted(due)

    def changed(self, sample: SpendSampled) -> bool:
        """Whether the sample differs from the last one published of its tenant (in anything but its time)."""
        last = self._last.get(sample.tenant)
        return last is None or _level(last) != _level(sample)

    def published(self, sample: SpendSampled) -> None:
        """Remember the sample as the last one published of its tenant."""
        self._last[sample.tenant] = sample


async def sample_round(bus: Bus, samples: Samples, read: Read, at: float, every_s: float) -> int:
    """Publish a sample of each due tenant whose ledger changed; returns how many were published. A tenant
    that could not be read or published is marked again, for the next round."""
    published = 0
    for tenant in samples.due():
        try:
            sample = sample_of(await read(tenant), at, every_s)
            if not samples.changed(sample):
                continue
            await bus.streams.publish(topics.BUDGET_EVENTS.at(tenant), sample, msg_id=sample_msg_id(sample))
        except Exception as exc:
            log.warning("spend sample of %s not published: %r", tenant, exc, extra={"tenant": tenant})
            samples.mark(tenant)
            continue
        samples.published(sample)
        published += 1
    return published


async def run_sampler(
    bus: Bus, samples: Samples, read: Read, clock: Callable[[], float], every_s: float
) -> None:
    """Sample in the middle of every interval until the bus stops, then once more (what changed since the
    last round would otherwise wait for the tenant's next change)."""
    while not bus.lifetime.stopping:
        await bus.lifetime.sleep(next_round_at(clock(), every_s) - clock())
        if bus.lifetime.stopping:
            break
        await sample_round(bus, samples, read, clock(), every_s)
    try:
        async with asyncio.timeout(_LAST_ROUND_S):
            await sample_round(bus, samples, read, clock(), every_s)
    except TimeoutError:
        log.warning("the last spend samples took over %.0f s: given up", _LAST_ROUND_S)
