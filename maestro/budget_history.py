"""A tenant's budget history: its spend over time and the budget alerts that fired, from a time until now.

Both come from the budget events stream (maestro.v1.budgetevt.<tenant>), read by one bounded range
(maestro/stream_range.py): the spend samples the budget replicas publish (services/budget/sampler.py),
thinned to the last one of each of POINTS steps, and every other event as it is. The API's
GET /v1/budgets/{tenant}/history and the SDK's Client.budget_history read it here.
"""

from __future__ import annotations

from datetime import datetime

from nats.js import JetStreamContext

from maestro import codec, topics
from maestro.stream_range import Range, read_range
from proto.v1 import BudgetAlerts, BudgetEvents, BudgetHistory, SpendSampled

POINTS = 240
"""The steps a range is cut in: a history holds at most this many samples, the last of each step."""
LIMIT = 20_000
"""The most budget events one history reads: a week of a sample a minute (10,080), with room for alerts."""


def thinned(samples: list[SpendSampled], since: datetime, step_s: float) -> list[SpendSampled]:
    """The last sample of each step of `step_s` seconds from `since` that has one, oldest first (every
    sample when the steps have no length)."""
    ordered = sorted(samples, key=lambda sample: sample.at)
    if step_s <= 0:
        return ordered
    last: dict[int, SpendSampled] = {}
    for sample in ordered:
        last[int((sample.at - since).total_seconds() // step_s)] = sample
    return list(last.values())


def history_of(tenant: str, since: datetime, now: datetime, stored: Range) -> BudgetHistory:
    """The history a range of the tenant's budget events tells; a message that does not decode as one (a
    kind a newer budget publishes) is left out."""
    samples: list[SpendSampled] = []
    alerts: list[BudgetAlerts] = []
    for message in stored.messages:
        try:
            event: BudgetEvents = codec.decode(topics.BUDGET_EVENTS.type, message.data)
        except codec.DecodeError:
            continue
        if isinstance(event, SpendSampled):
            samples.append(event)
        else:
            alerts.append(event)
    step_s = (now - since).total_seconds() / POINTS
    return BudgetHistory(
        tenant=tenant,
        since=since,
        step_s=step_s,
        samples=thinned(samples, since, step_s),
        alerts=alerts,
        partial=stored.partial,
    )


async def read_history(js: JetStreamContext, tenant: str, since: datetime, now: datetime) -> BudgetHistory:
    """The tenant's history from `since` until `now`; raises what nats-py raises when the stream cannot be
    read (nats.errors.Error, TimeoutError)."""
    subject = topics.BUDGET_EVENTS.subject(tenant)
    stored = await read_range(js, topics.STREAM_BUDGET_EVENTS, [subject], since, limit=LIMIT)
    return history_of(tenant, since, now, stored)
