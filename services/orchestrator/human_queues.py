"""Human queues as Prometheus sees them: tasks waiting and claimed per queue, how long people took to claim
and to complete them, and the SLAs they breached.

Every orchestrator replica times and counts what each record it writes changed from the one it replaced
(changed()): a compare-and-set write has exactly one predecessor, so each claim, completion and breach is
counted once, whichever replica wrote it. The open tasks per queue are counted by the replica that leads,
like the running tasks (services/orchestrator/running.py): from its writes, the other replicas' news of
theirs, and the open human tasks read back when it takes the lead (`seed`).
"""

from __future__ import annotations

import logging
from collections import Counter as Tally
from collections.abc import Iterator

import nats.errors
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from maestro.listing import ListingError
from proto.v1 import TaskRecord, Written
from proto.v1.ids import is_human, queue_of
from services.orchestrator.open_tasks import OpenTasks, written
from services.orchestrator.store import TaskStore

log = logging.getLogger(__name__)

_SECONDS = (10, 60, 300, 900, 1800, 3600, 4 * 3600, 8 * 3600, 86_400, 3 * 86_400)
"""Human time: from seconds to days."""


class HumanQueues(Collector):
    """Open human tasks per queue and state (read at each scrape), and the times and breaches seen."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.open: OpenTasks[tuple[str, str]] = OpenTasks()
        """Per open human task: its queue and state."""
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

    def changed(self, previous: TaskRecord | None, record: TaskRecord) -> None:
        """A task's record was just written over `previous` (None: created): time and count what changed."""
        role = record.role or ""
        if not is_human(role):
            return
        queue = queue_of(role)
        if record.claims and not (previous and previous.claims) and record.queued_at and record.started_at:
            self.to_claim.labels(queue).observe((record.started_at - record.queued_at).total_seconds())
        for sla in set(record.escalations) - set(previous.escalations if previous else ()):
            self.breaches.labels(queue, sla).inc()
        completed = record.state == "succeeded" and not (previous and previous.state == "succeeded")
        if completed and record.started_at and record.finished_at:
            self.to_complete.labels(queue).observe((record.finished_at - record.started_at).total_seconds())

    def note(self, record: Written) -> None:
        """A task's record as written (by this replica or another, now or a moment ago): open or not."""
        if is_human(record.role):
            is_open = record.state in ("queued", "running")
            self.open.note(
                record.task_id, record.seq, (queue_of(record.role), record.state) if is_open else None
            )

    def collect(self) -> Iterator[Metric]:
        tasks = GaugeMetricFamily(
            "maestro_human_tasks",
            "Human tasks waiting for a person or claimed by one, per queue",
            labels=["queue", "state"],
        )
        counts = Tally(
            (queue, "claimed" if state == "running" else "waiting") for queue, state in self.open.values()
        )
        for (queue, state), count in sorted(counts.items()):
            tasks.add_metric([queue, state], count)
        yield tasks


async def seed(queues: HumanQueues, store: TaskStore) -> None:
    """Read the open tasks back from the tasks bucket and keep the human ones (what was noted meanwhile is
    newer and stays)."""
    records: list[TaskRecord] = []
    try:
        records = await store.every(frozenset({"queued", "running"}))
    except (ListingError, nats.errors.Error, TimeoutError) as exc:
        log.warning("could not read the human tasks back (%s): counting those written from now on", exc)
    for record in records:
        queues.note(written(record))
