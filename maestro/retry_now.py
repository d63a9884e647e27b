"""Running a task's next attempt now: the one way the API, the SDK and the CLI ask for it.

A task whose attempt failed waits, `queued` with its `next_retry_at`, for its back-off to end: its next
assignment is a JetStream message schedule on `maestro.v1.redispatch.<role>.<task_id>` (see
services/orchestrator/effects.py). Retrying it now records who asked (a `task.retrying` event whose
`next_at` is now), then schedules the same assignment again, due at once, only if the schedule read is still
the one there (`Nats-Expected-Last-Subject-Sequence`): a schedule that came due meanwhile is gone, the
replacement is refused, and the attempt runs once, at its own time.
"""

from __future__ import annotations

from datetime import UTC, datetime

from nats.js.errors import NotFoundError

from maestro import codec, topics
from maestro.bus import Bus
from maestro.errors import MaestroError, WrongRevision
from proto.v1 import Retrying, TaskAssignment, TaskRecord

MAX_REASON = 4096


class NotWaiting(MaestroError):
    """The task is not waiting for a retry (or its attempt is starting already): nothing to run now."""

    def __init__(self, record: TaskRecord, detail: str = "") -> None:
        super().__init__(detail or f"task {record.id} is {record.state}, not waiting for a retry")
        self.state = record.state


async def retry_now(
    bus: Bus, record: TaskRecord, *, by: str, reason: str = "", now: datetime | None = None
) -> Retrying:
    """Hand `record`'s next attempt to its agents now; raises NotWaiting when it is not waiting for one."""
    now = now or datetime.now(UTC)
    if record.state != "queued" or record.next_retry_at is None or record.role is None:
        raise NotWaiting(record)
    schedule = topics.REDISPATCH.at(record.role, record.id)
    try:
        stored = await bus.js.get_msg(topics.STREAM_TASKS, subject=schedule.name)
    except NotFoundError:
        raise NotWaiting(record, f"task {record.id}'s next attempt is starting already") from None
    assignment = codec.decode(TaskAssignment, stored.data or b"")
    if assignment.attempt != record.attempts + 1 or stored.seq is None:
        raise NotWaiting(record, f"task {record.id}'s attempt {assignment.attempt} is starting already")
    why = f"retried now by {by}" + (f": {reason[:MAX_REASON]}" if reason else "")
    event = Retrying(
        task_id=record.id,
        tenant=record.tenant,
        at=now,
        attempt=assignment.attempt,
        next_at=now,
        error=why,
        reservation_id=assignment.reservation_id,
    )
    await bus.streams.publish(
        topics.EVENTS.at(record.tenant, record.id),
        event,
        msg_id=topics.event_msg_id(record.id, f"retry-{assignment.attempt}-now"),
    )
    try:
        await bus.streams.schedule(
            schedule,
            assignment,
            due=now,
            target=topics.TASKS.at(record.role, record.tenant),
            after_seq=stored.seq,
        )
    except WrongRevision:
        raise NotWaiting(
            record, f"task {record.id}'s attempt {assignment.attempt} came due meanwhile"
        ) from None
    return event
