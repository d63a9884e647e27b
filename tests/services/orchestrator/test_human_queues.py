"""Human queues' metrics, from the records the orchestrator writes: open tasks per queue and state, times to
claim and complete, SLA breaches counted once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from msgspec import structs
from prometheus_client import CollectorRegistry

from proto.v1 import TaskRecord
from services.orchestrator.human_queues import HumanQueues
from services.orchestrator.open_tasks import written

T0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def _record(task_id: str) -> TaskRecord:
    return TaskRecord(
        id=task_id,
        tenant="acme",
        state="queued",
        created_at=T0,
        updated_at=T0,
        role="human:security",
        queued_at=T0,
    )


class Writer:
    """Records written one over another, as the orchestrator writes them: each told with its predecessor."""

    def __init__(self, queues: HumanQueues) -> None:
        self.queues = queues
        self.last: dict[str, TaskRecord] = {}

    def note(self, record: TaskRecord) -> None:
        self.queues.changed(self.last.get(record.id), record)
        self.queues.note(written(record))
        self.last[record.id] = record


def test_open_tasks_times_and_breaches_are_counted_per_queue() -> None:
    registry = CollectorRegistry()
    queues = Writer(HumanQueues(registry))
    waiting = _record("a")
    queues.note(waiting)
    queues.note(_record("b"))
    queues.note(
        TaskRecord(id="c", tenant="acme", state="queued", created_at=T0, updated_at=T0, role="tester")
    )
    sample = registry.get_sample_value
    assert sample("maestro_human_tasks", {"queue": "security", "state": "waiting"}) == 2

    claimed = structs.replace(waiting, state="running", claims=1, started_at=T0 + timedelta(seconds=90))
    queues.note(claimed)
    queues.note(structs.replace(claimed, lease_until=T0 + timedelta(hours=1)))  # a renewal: no second claim
    assert sample("maestro_human_tasks", {"queue": "security", "state": "claimed"}) == 1
    assert sample("maestro_human_claim_seconds_count", {"queue": "security"}) == 1
    assert sample("maestro_human_claim_seconds_sum", {"queue": "security"}) == 90

    breached = structs.replace(claimed, escalations=["complete"])
    queues.note(breached)
    queues.note(breached)
    assert sample("maestro_human_sla_breaches_total", {"queue": "security", "sla": "complete"}) == 1

    done = structs.replace(breached, state="succeeded", finished_at=T0 + timedelta(seconds=390))
    queues.note(done)
    assert sample("maestro_human_complete_seconds_sum", {"queue": "security"}) == 300
    assert sample("maestro_human_tasks", {"queue": "security", "state": "claimed"}) is None
    assert sample("maestro_human_tasks", {"queue": "security", "state": "waiting"}) == 1
