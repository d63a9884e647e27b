"""The sweeper: releases expired holds of tenants nobody touches, so a dead worker cannot lock budget."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from datetime import UTC, datetime

import msgspec
from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from maestro import scan, topics
from maestro.doctor.facts import OverdueHold
from services.budget.ledger import Hold, Touch
from services.budget.store import Clock, Ledgers

log = logging.getLogger(__name__)


class _Holds(msgspec.Struct):
    """Just the holds of a stored ledger: all the sweeper needs to decide whether to touch it."""

    holds: dict[str, Hold] = {}


_holds_decoder = msgspec.json.Decoder(_Holds)


async def sweep(js: JetStreamContext, kv: KeyValue, ledgers: Ledgers, clock: Clock) -> int:
    """Touch every ledger that has a hold past its ttl; returns how many were touched.

    Every replica sweeps; the touch is an ordinary compare-and-set write, so two replicas sweeping the same
    tenant cannot release a hold twice (the second finds it gone and writes nothing). The cost is one read
    per tenant per sweep: fine for thousands of tenants, and the place to add an index beyond that.
    """
    touched = 0
    for tenant in await scan.keys(js, topics.BUCKET_BUDGET):
        if ledgers.busy(tenant):
            continue  # its own operations expire its holds
        try:
            entry = await kv.get(tenant)
        except KeyNotFoundError:
            continue
        holds = _holds_decoder.decode(entry.value or b"{}").holds
        now = clock()
        if any(hold.expires_at <= now for hold in holds.values()):
            await ledgers.submit(tenant, Touch(tenant))
            touched += 1
    return touched


async def holds_past_ttl(js: JetStreamContext, now: float) -> list[OverdueHold]:
    """Every hold of every ledger whose ttl ran out before `now` (epoch seconds) and that is still stored:
    released at the next sweep, or never while no budget replica runs. One pass over the bucket, for
    `maestro doctor`."""
    found: list[OverdueHold] = []
    async for entry in scan.current_entries(js, topics.BUCKET_BUDGET):
        with contextlib.suppress(msgspec.DecodeError):
            for rid, hold in _holds_decoder.decode(entry.value).holds.items():
                if hold.expires_at <= now:
                    expired = datetime.fromtimestamp(hold.expires_at, UTC)
                    found.append(OverdueHold(entry.key, rid, hold.amount_micro_usd, expired))
    return found


async def run_sweeper(
    js: JetStreamContext, kv: KeyValue, ledgers: Ledgers, clock: Clock, every_s: float
) -> None:
    """Sweep every `every_s` seconds (with jitter, so replicas spread out) until cancelled."""
    while True:
        await asyncio.sleep(every_s * random.uniform(0.5, 1.0))
        try:
            touched = await sweep(js, kv, ledgers, clock)
            if touched:
                log.info("released expired holds of %d idle tenants", touched)
        except Exception as exc:
            log.warning("budget sweep failed: %r", exc)
