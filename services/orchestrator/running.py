"""Tasks running now and their time-outs, to count those still running past theirs (their timer did not end
them: something is wrong with the timers or with applying what they decided).

The orchestrator writes every task record, so it notes each one as it writes it; at start it reads the
running ones back from the tasks bucket once (`seed`), so a task that went quiet before a restart is still
counted. Like the dispatcher, it assumes one orchestrator serves a mesh.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import datetime

import nats.errors
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from maestro.listing import ListingError
from maestro.overdue import GRACE_S, is_overdue, time_out_at
from proto.v1 import TaskRecord
from services.orchestrator.store import TaskStore

log = logging.getLogger(__name__)


class RunningTasks:
    """Each running task's deadline (None: no start-to-close time-out), as its latest record says."""

    def __init__(self) -> None:
        self._deadlines: dict[str, datetime | None] = {}
        self._seqs: dict[str, int] | None = None
        """While seeding: the newest event sequence noted per task, so a record read before it is ignored."""

    def note(self, record: TaskRecord) -> None:
        """A task's record as just written."""
        if self._seqs is not None:
            self._seqs[record.id] = max(self._seqs.get(record.id, 0), record.last_event_seq)
        if record.state == "running":
            self._deadlines[record.id] = time_out_at(record)
        else:
            self._deadlines.pop(record.id, None)

    def seeding(self) -> None:
        """Records read back from the bucket will follow (`seeded`): remember what is noted meanwhile."""
        self._seqs = {}

    def seeded(self, records: list[TaskRecord]) -> None:
        """Running records read back from the bucket; those noted since the read began are newer."""
        seqs, self._seqs = self._seqs or {}, None
        for record in records:
            if record.last_event_seq > seqs.get(record.id, 0) and record.state == "running":
                self._deadlines[record.id] = time_out_at(record)

    def count(self) -> int:
        """Tasks running."""
        return len(self._deadlines)

    def overdue(self, now: datetime) -> int:
        """Tasks still running more than maestro.overdue.GRACE_S past their time-out."""
        return sum(1 for deadline in self._deadlines.values() if is_overdue(deadline, now))


async def seed(running: RunningTasks, store: TaskStore) -> None:
    """Read every running task back from the tasks bucket into `running`."""
    running.seeding()
    records: list[TaskRecord] = []
    try:
        records = await store.every(frozenset({"running"}))
    except (ListingError, nats.errors.Error, TimeoutError) as exc:
        log.warning("could not read the running tasks back (%s): counting those written from now on", exc)
    running.seeded(records)


class RunningGauges(Collector):
    """Tasks running and those running past their time-out, read from `running` at each scrape."""

    def __init__(self, running: RunningTasks, clock: Callable[[], datetime]) -> None:
        self._running = running
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "maestro_tasks_running", "Tasks in the running state", value=self._running.count()
        )
        yield GaugeMetricFamily(
            "maestro_tasks_running_overdue",
            f"Tasks still running more than {GRACE_S:.0f} s past their start-to-close time-out",
            value=self._running.overdue(self._clock()),
        )
