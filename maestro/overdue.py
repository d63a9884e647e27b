"""When a task's time-out ends it, as its record tells, and how long past that it may still be seen alive.

The orchestrator ends a timed-out task with a durable timer armed at the deadline; something still queued,
running or awaiting approval well past its deadline means the timers or the writes of what they decided are
not working. `maestro doctor`, the orchestrator's running-task gauges and the guard's approval gauges judge
it the same way, here.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from proto.v1 import TaskRecord

GRACE_S = 60.0
"""How long past its deadline a task may still be seen before it counts as overdue: its timer fires at the
deadline, and what it decided is recorded within moments."""


def time_out_at(record: TaskRecord) -> datetime | None:
    """When a queued or running task's time-out ends it, as its record tells (None: no time-out applies, or
    the record cannot tell: an attempt after the first started at a time the record does not keep)."""
    timeouts = record.timeouts
    if timeouts is None:
        return None
    if record.state == "queued" and timeouts.schedule_to_start_s is not None:
        since = record.next_retry_at or record.queued_at
        return since + timedelta(seconds=timeouts.schedule_to_start_s) if since else None
    if record.state == "running" and timeouts.start_to_close_s is not None and record.attempts <= 1:
        started = record.started_at
        return started + timedelta(seconds=timeouts.start_to_close_s) if started else None
    return None


def is_overdue(deadline: datetime | None, now: datetime) -> bool:
    """Whether `now` is more than GRACE_S past `deadline` (never, without one)."""
    return deadline is not None and now - deadline > timedelta(seconds=GRACE_S)
