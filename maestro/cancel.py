"""Cancelling a task: the one way the API, the SDK and the CLI ask for it.

The request is the `Cancelled` event itself, stored on the task's events subject under the task's one
`end` message id: the orchestrator folds it (releasing a hold, rejecting a parked request at the guard) and
the worker running the task, which follows that subject, stops it. A task that ends first keeps its end;
the cancellation is then refused by the state machine and changes nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime

from maestro import topics
from maestro.bus import Bus
from maestro.errors import MaestroError
from proto.v1 import TERMINAL_STATES, Cancelled, TaskRecord

MAX_BY = 256
MAX_REASON = 4096


class AlreadyEnded(MaestroError):
    """The task has ended (or is ending: its end is recorded) and cannot be cancelled."""

    def __init__(self, record: TaskRecord, detail: str = "") -> None:
        super().__init__(detail or f"task {record.id} has ended ({record.state}): nothing to cancel")
        self.state = record.state


async def cancel(
    bus: Bus, record: TaskRecord, *, by: str, reason: str = "", traceparent: str | None = None
) -> Cancelled:
    """Ask for `record`'s task to be cancelled; raises AlreadyEnded when it ended or another end won."""
    if record.state in TERMINAL_STATES:
        raise AlreadyEnded(record)
    event = Cancelled(
        task_id=record.id,
        tenant=record.tenant,
        at=datetime.now(UTC),
        by=by[:MAX_BY],
        reason=reason[:MAX_REASON],
    )
    ack = await bus.streams.publish(
        topics.EVENTS.at(record.tenant, record.id),
        event,
        msg_id=topics.end_msg_id(record.id),
        traceparent=traceparent,
    )
    if ack.duplicate:
        raise AlreadyEnded(record, f"task {record.id} is ending already (cancelled or timed out)")
    return event
