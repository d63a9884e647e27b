"""What the guard decided, counted per tenant and published every MAESTRO_TALLY_S as DecisionTally messages.

The console charts the guard's decisions per rule over time from these tallies; reading the events stream
for that would not scale. Counting is a dict increment on the guard's hot path, in memory: a guard killed
outright (SIGKILL) loses the counts of at most the interval under way, and a guard that stops publishes what
it counted. The events stream, not the tallies, is the audit log.

Each tally's dedup id names its guard, tenant and interval start (topics.tally_msg_id), so a publish retried
after NATS failed to answer is stored once (within the stream's MAESTRO_DUPLICATE_WINDOW_S); tallies that
could not be published are tried again at the next flush, the oldest dropped past MAX_UNSENT.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from nats.errors import Error as NatsError

from maestro import topics
from maestro.bus import Bus
from maestro.cancels import raise_swallowed_cancel
from proto.v1 import Decision, DecisionTally

log = logging.getLogger(__name__)

MAX_UNSENT = 10_000
"""Tallies kept for a later publish while NATS does not take them (a few hundred bytes each); past it, the
oldest are dropped: the counts are for charts, the events stream has every decision."""

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Counts:
    """One tenant's decisions since the last take."""

    verdicts: Counter[str] = field(default_factory=Counter)
    rules: Counter[str] = field(default_factory=Counter)
    bundle_hash: str = ""


class Tally:
    """The decisions one guard made per tenant since the counts were last taken (no I/O)."""

    def __init__(self, guard: str, started: datetime) -> None:
        self._guard = guard
        self._started = started
        self._counts: dict[str, _Counts] = {}

    def count(self, tenant: str, decision: Decision) -> None:
        """Count one decision for `tenant`: its verdict, and each rule that fired on it once."""
        counts = self._counts.get(tenant)
        if counts is None:
            counts = self._counts[tenant] = _Counts()
        counts.verdicts[decision.verdict] += 1
        counts.bundle_hash = decision.policy_hash
        if decision.violations:
            counts.rules.update({v.rule_id for v in decision.violations})

    def take(self, now: datetime) -> list[DecisionTally]:
        """One tally per tenant with decisions since the last take (or the start), which ends at `now`; the
        counts start again from nothing."""
        taken, self._counts = self._counts, {}
        started, self._started = self._started, now
        interval_s = max(0.0, (now - started).total_seconds())
        return [
            DecisionTally(
                tenant=tenant,
                at=started,
                interval_s=interval_s,
                guard=self._guard,
                bundle_hash=counts.bundle_hash,
                verdicts=dict(counts.verdicts),
                rules=dict(counts.rules),
            )
            for tenant, counts in sorted(taken.items())
        ]


class Publisher:
    """Publishes a Tally's counts on DECISION_TALLIES, keeping what NATS did not take for the next flush."""

    def __init__(self, bus: Bus, tally: Tally, clock: Clock = _utcnow) -> None:
        self._bus = bus
        self._tally = tally
        self._clock = clock
        self._unsent: list[DecisionTally] = []

    @property
    def unsent(self) -> int:
        """Tallies taken but not stored yet."""
        return len(self._unsent)

    async def flush(self) -> None:
        """Take the counts and publish them (and any left unsent before), oldest first; stops at the first
        failure and keeps the rest for the next flush. Raises nothing NATS raises."""
        self._unsent.extend(self._tally.take(self._clock()))
        if len(self._unsent) > MAX_UNSENT:
            dropped = len(self._unsent) - MAX_UNSENT
            log.warning("dropped the %d oldest decision tallies NATS did not take", dropped)
            del self._unsent[:dropped]
        while self._unsent:
            tally = self._unsent[0]
            try:
                await self._bus.streams.publish(
                    topics.DECISION_TALLIES.at(tally.tenant),
                    tally,
                    msg_id=topics.tally_msg_id(tally.guard, tally.tenant, tally.at),
                )
            except (NatsError, TimeoutError) as exc:
                log.warning("could not publish %d decision tallies (tried again later): %r", self.unsent, exc)
                return
            del self._unsent[0]

    async def flush_every(self, every_s: float) -> None:
        """Flush every `every_s` seconds until cancelled (a cancel nats-py swallowed too: cancels.py)."""
        while True:
            raise_swallowed_cancel()
            await asyncio.sleep(every_s)
            await self.flush()


@asynccontextmanager
async def publishing(bus: Bus, tally: Tally) -> AsyncIterator[Publisher]:
    """Publish `tally` every MAESTRO_TALLY_S while the block runs, and what is left when it ends (the
    guard's handlers are done by then: it wraps their consumer)."""
    publisher = Publisher(bus, tally)
    flushing = asyncio.create_task(publisher.flush_every(bus.settings.tally_s), name="guard-tally")
    try:
        yield publisher
    finally:
        flushing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await flushing
        try:
            async with asyncio.timeout(bus.settings.request_timeout_s):
                await publisher.flush()
        except TimeoutError:
            log.warning("the last decision tallies were not published before the guard stopped")
