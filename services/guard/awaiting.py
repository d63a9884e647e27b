"""Tasks awaiting a person's approval, as the parked bucket has them now: how many, how long the oldest has
waited, and how many are still undecided past their approval time-out (whose timer should have ended them).

Every guard follows the bucket (a watch: a change arrives as it is written, and a scrape reads memory), so
each replica exports the same numbers; dashboards take the max over replicas.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from maestro import codec, topics
from maestro.bus import Bus
from maestro.following import follow_keys
from maestro.overdue import GRACE_S, is_overdue
from maestro.tenant_labels import TenantLabels
from proto.v1 import Parked

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Waiting:
    """One undecided parked task: whose, since when, and until when a person may decide."""

    tenant: str
    since: datetime
    expires_at: datetime | None


class Awaiting:
    """The undecided parked tasks by task id, kept up to date by `offer`."""

    def __init__(self) -> None:
        self.waiting: dict[str, Waiting] = {}

    def offer(self, task_id: str, value: bytes | None, _revision: int = 0) -> None:
        """A parked entry as just written (None: deleted); a decided one no longer waits."""
        parked = None
        if value:
            try:
                parked = codec.decode(Parked, value)
            except codec.DecodeError:
                log.warning("parked entry %s does not decode: not counted", task_id)
        if parked is None or parked.decided is not None:
            self.waiting.pop(task_id, None)
            return
        self.waiting[task_id] = Waiting(parked.request.tenant, parked.parked_at, parked.expires_at)

    def overdue(self, now: datetime) -> int:
        """Undecided tasks more than maestro.overdue.GRACE_S past their approval time-out."""
        return sum(1 for w in self.waiting.values() if is_overdue(w.expires_at, now))

    def by_tenant(self, label: Callable[[str], str]) -> dict[str, tuple[int, datetime]]:
        """How many wait and since when the oldest has, per tenant label."""
        counts: dict[str, int] = defaultdict(int)
        oldest: dict[str, datetime] = {}
        for waiting in self.waiting.values():
            name = label(waiting.tenant)
            counts[name] += 1
            oldest[name] = min(oldest.get(name, waiting.since), waiting.since)
        return {name: (count, oldest[name]) for name, count in counts.items()}


class AwaitingGauges(Collector):
    """Tasks awaiting approval and the oldest one's wait per tenant, and the overdue ones, at each scrape."""

    def __init__(self, awaiting: Awaiting, tenant_label: TenantLabels, clock: Callable[[], datetime]) -> None:
        self._awaiting = awaiting
        self._tenant_label = tenant_label
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        now = self._clock()
        count = GaugeMetricFamily(
            "maestro_approvals_waiting", "Tasks awaiting a person's approval", labels=["tenant"]
        )
        age = GaugeMetricFamily(
            "maestro_approvals_oldest_wait_seconds",
            "How long the oldest task awaiting approval has waited",
            labels=["tenant"],
        )
        for tenant, (waiting, since) in self._awaiting.by_tenant(self._tenant_label).items():
            count.add_metric([tenant], waiting)
            age.add_metric([tenant], (now - since).total_seconds())
        yield count
        yield age
        yield GaugeMetricFamily(
            "maestro_approvals_overdue",
            f"Tasks still awaiting approval more than {GRACE_S:.0f} s past their approval time-out",
            value=self._awaiting.overdue(now),
        )


async def follow(bus: Bus, awaiting: Awaiting) -> None:
    """Keep `awaiting` up to date with the parked bucket until the bus stops."""
    kv = await bus.js.key_value(topics.BUCKET_PARKED)
    await follow_keys(kv, ">", awaiting.offer, bus.lifetime.stop_event)
