"""Tasks running now and their time-outs, to count those still running past theirs (their timer did not end
them: something is wrong with the timers or with applying what they decided).

The orchestrator replica that leads counts them (services/orchestrator/leading.py): it notes each record it
writes and those the other replicas tell it of, and when it takes the lead it reads the running ones back
from the tasks bucket once (`seed`), so a task that went quiet before is still counted. Replicas that do not
lead count none.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import datetime

import nats.errors
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from maestro.listing import ListingError
from maestro.overdue import GRACE_S, is_overdue
from proto.v1 import TaskRecord, Written
from services.orchestrator.open_tasks import OpenTasks, written
from services.orchestrator.store import TaskStore

log = logging.getLogger(__name__)


class RunningTasks:
    """Each running task's deadline (None: no start-to-close time-out), as its newest record noted says."""

    def __init__(self) -> None:
        self.tasks: OpenTasks[tuple[datetime | None]] = OpenTasks()

    def note(self, record: Written) -> None:
        """A task's record as written (by this replica or another, now or a moment ago)."""
        self.tasks.note(record.task_id, record.seq, (record.deadline,) if record.state == "running" else None)

    def count(self) -> int:
        """Tasks running."""
        return len(self.tasks)

    def overdue(self, now: datetime) -> int:
        """Tasks still running more than maestro.overdue.GRACE_S past their time-out."""
        return sum(1 for (deadline,) in self.tasks.values() if is_overdue(deadline, now))


async def seed(running: RunningTasks, store: TaskStore) -> None:
    """Read every running task back from the tasks bucket into `running` (what was noted meanwhile is newer
    and stays)."""
    records: list[TaskRecord] = []
    try:
        records = await store.every(frozenset({"running"}))
    except (ListingError, nats.errors.Error, TimeoutError) as exc:
        log.warning("could not read the running tasks back (%s): counting those written from now on", exc)
    for record in records:
        running.note(written(record))


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
