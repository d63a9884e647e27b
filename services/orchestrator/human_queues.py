"""Human queues as Prometheus sees them: tasks waiting and claimed per queue, how long people took to claim
and to complete them, and the SLAs they breached.

The orchestrator writes every task record, so it notes each one as it writes it (like the running tasks'
gauges, services/orchestrator/running.py); at start it reads the open human tasks back once (`seed`).
"""

from __future__ import annotations

import logging
from collections import Counter as Tally
from collections.abc import Iterator
from dataclasses import dataclass

import nats.errors
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from maestro.listing import ListingError
from proto.v1 import TaskRecord
from proto.v1.ids import is_human, queue_of
from services.orchestrator.store import TaskStore

log = logging.getLogger(__name__)

_SECONDS = (10, 60, 300, 900, 1800, 3600, 4 * 3600, 8 * 3600, 86_400, 3 * 86_400)
"""Human time: from seconds to days."""


@dataclass(frozen=True)
class _Seen:
    queue: str
    state: str
    claims: int
    escalations: tuple[str, ...]


class HumanQueues(Collector):
    """Open human tasks per queue and state (read at each scrape), and the times and breaches seen."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._open: dict[str, _Seen] = {}
        self.to_claim = Histogram(
            "maestro_human_claim_seconds",
            "Time from a human task's queueing to its first claim, per queue",
            ["queue"],
            buckets=_SECONDS,
            registry=registry,
        )
        self.to_complete = Histogram(
            "maestro_human_complete_seconds",
            "Time from a human task's first claim to its completion, per queue",
            ["queue"],
            buckets=_SECONDS,
            registry=registry,
        )
        self.breaches = Counter(
            "maestro_human_sla_breaches_total",
            "Human tasks that breached an SLA (escalated once each), per queue and SLA (claim, complete)",
            ["queue", "sla"],
            registry=registry,
        )
        registry.register(self)

    def note(self, record: TaskRecord) -> None:
        """A task's record as just written: count its queue's open tasks, time what it just did."""
        role = record.role or ""
        if not is_human(role):
            return
        queue = queue_of(role)
        before = self._open.get(record.id)
        if record.claims and (before is None or not before.claims) and record.queued_at and record.started_at:
            self.to_claim.labels(queue).observe((record.started_at - record.queued_at).total_seconds())
        for sla in set(record.escalations) - set(before.escalations if before else ()):
            self.breaches.labels(queue, sla).inc()
        if record.state == "succeeded" and record.started_at and record.finished_at:
            self.to_complete.labels(queue).observe((record.finished_at - record.started_at).total_seconds())
        if record.state in ("queued", "running"):
            self._open[record.id] = _Seen(queue, record.state, record.claims, tuple(record.escalations))
        else:
            self._open.pop(record.id, None)

    def seeded(self, records: list[TaskRecord]) -> None:
        """Open human tasks read back at start (those noted since are newer and kept)."""
        for record in records:
            role = record.role or ""
            if is_human(role) and record.id not in self._open and record.state in ("queued", "running"):
                seen = _Seen(queue_of(role), record.state, record.claims, tuple(record.escalations))
                self._open[record.id] = seen

    def collect(self) -> Iterator[Metric]:
        tasks = GaugeMetricFamily(
            "maestro_human_tasks",
            "Human tasks waiting for a person or claimed by one, per queue",
            labels=["queue", "state"],
        )
        counts = Tally(
            (seen.queue, "claimed" if seen.state == "running" else "waiting") for seen in self._open.values()
        )
        for (queue, state), count in sorted(counts.items()):
            tasks.add_metric([queue, state], count)
        yield tasks


async def seed(queues: HumanQueues, store: TaskStore) -> None:
    """Read the open tasks back from the tasks bucket and keep the human ones."""
    records: list[TaskRecord] = []
    try:
        records = await store.every(frozenset({"queued", "running"}))
    except (ListingError, nats.errors.Error, TimeoutError) as exc:
        log.warning("could not read the human tasks back (%s): counting those written from now on", exc)
    queues.seeded(records)
