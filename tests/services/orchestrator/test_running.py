"""Running tasks and those past their time-out: noted as records are written (here or by another replica),
read back once when the replica takes the lead."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from msgspec import structs
from prometheus_client import CollectorRegistry

from maestro.bus import Bus
from proto.v1 import TaskRecord, Timeouts
from services.orchestrator.open_tasks import written
from services.orchestrator.running import RunningGauges, RunningTasks, seed
from services.orchestrator.store import TaskStore

T0 = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def record(task_id: str, state: str = "running", limit_s: float | None = 60.0, seq: int = 5) -> TaskRecord:
    return TaskRecord(
        id=task_id,
        tenant="acme",
        state=state,  # type: ignore[arg-type]
        created_at=T0,
        updated_at=T0,
        started_at=T0,
        timeouts=Timeouts(start_to_close_s=limit_s) if limit_s else None,
        last_event_seq=seq,
    )


def exported(running: RunningTasks, now: datetime) -> dict[str, float]:
    registry = CollectorRegistry()
    registry.register(RunningGauges(running, lambda: now))
    return {s.name: s.value for family in registry.collect() for s in family.samples}


def test_a_task_running_past_its_time_out_and_the_grace_is_overdue_until_it_ends() -> None:
    running = RunningTasks()
    running.note(written(record("short", limit_s=60.0)))
    running.note(written(record("long", limit_s=3600.0)))
    running.note(written(record("untimed", limit_s=None)))
    running.note(written(record("queued", state="queued")))
    assert exported(running, T0 + timedelta(seconds=119)) == {
        "maestro_tasks_running": 3,
        "maestro_tasks_running_overdue": 0,  # past its time-out, within the grace
    }
    assert exported(running, T0 + timedelta(seconds=121))["maestro_tasks_running_overdue"] == 1
    running.note(written(record("short", state="timed_out", seq=6)))
    assert exported(running, T0 + timedelta(days=1)) == {
        "maestro_tasks_running": 2,
        "maestro_tasks_running_overdue": 1,  # the long one, a day later
    }


def test_a_later_attempt_is_never_overdue_by_the_first_attempt_s_start() -> None:
    # The record keeps when the first attempt started; a retry's own time-out runs from its own start, which
    # the record does not keep, so the gauge cannot tell it late (it counted it late before).
    running = RunningTasks()
    running.note(written(structs.replace(record("retried", limit_s=60.0), attempts=2)))
    assert exported(running, T0 + timedelta(hours=1)) == {
        "maestro_tasks_running": 1,
        "maestro_tasks_running_overdue": 0,
    }


def test_notes_in_any_order_count_each_task_by_its_newest_record() -> None:
    # Records read back from the bucket, and news from other replicas, may come after a newer record.
    running = RunningTasks()
    running.note(written(record("ended", state="succeeded", seq=9)))
    for late in (record("ended", seq=8), record("quiet", seq=3), record("done", state="failed")):
        running.note(written(late))
    assert exported(running, T0)["maestro_tasks_running"] == 1  # only the quiet one
    running.note(written(record("quiet", state="succeeded", seq=4)))
    running.note(written(record("late", seq=1)))
    assert exported(running, T0)["maestro_tasks_running"] == 1  # the late one


async def test_seed_reads_the_running_tasks_back_from_the_bucket(bus: Bus) -> None:
    store, now = TaskStore(bus), datetime.now(UTC)
    for n in range(3):
        await store.put(structs.replace(record(f"run-{n}"), started_at=now), None)
    await store.put(record("over", state="succeeded"), None)
    await store.put(structs.replace(record("stuck", limit_s=1.0), started_at=now - timedelta(hours=1)), None)

    running = RunningTasks()
    await seed(running, store)

    assert running.count() == 4
    assert running.overdue(now) == 1
