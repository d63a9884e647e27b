"""What folding an event decides, no server: timers armed, tasks ended, holds released, approvals ended."""

from __future__ import annotations

import pytest
from msgspec import structs

from maestro.lifecycle import (
    Applied,
    ArmTimer,
    Decide,
    Record,
    Refused,
    ReleaseHold,
    StopWork,
    step,
)
from proto.v1 import (
    APPROVAL_TIMEOUT_BY,
    AwaitingApproval,
    Cancelled,
    Queued,
    Started,
    TaskEvent,
    TaskRecord,
    TaskState,
    TimedOut,
    Timeouts,
    TimerFired,
    TimerKind,
)
from tests.services.orchestrator.test_lifecycle import (
    APPROVE,
    ID,
    accepted,
    at,
    cancelled,
    failed,
    queued,
    record,
    started,
    succeeded,
    timed_out,
)

LIMITS = Timeouts(schedule_to_start_s=60, start_to_close_s=300)


def limited(state: TaskState, attempts: int = 0, **changes: object) -> TaskRecord:
    return structs.replace(record(state, attempts=attempts), timeouts=LIMITS, **changes)


def fired(timer: TimerKind, attempt: int = 0, seconds: int = 400) -> TimerFired:
    return TimerFired(task_id=ID, tenant="acme", at=at(seconds), timer=timer, attempt=attempt)


def applied(current: TaskRecord | None, event: TaskEvent, seq: int = 11) -> Applied:
    result = step(current, event, seq)
    assert isinstance(result, Applied), result
    return result


def test_accepted_keeps_the_requests_timeouts() -> None:
    assert applied(None, accepted(timeouts=LIMITS), 1).record.timeouts == LIMITS


def test_a_parked_task_arms_its_approval_deadline() -> None:
    deadline = at(3600)
    event = AwaitingApproval(task_id=ID, tenant="acme", at=at(1), decision=APPROVE, expires_at=deadline)
    assert applied(record("pending"), event).commands == (ArmTimer("acme", ID, "approval", deadline),)
    without = structs.replace(event, expires_at=None)
    assert applied(record("pending"), without).commands == ()


def test_queued_arms_schedule_to_start_and_started_arms_start_to_close_per_attempt() -> None:
    result = applied(limited("pending"), queued())
    assert result.record.queued_at == queued().at
    assert result.commands == (ArmTimer("acme", ID, "schedule_to_start", at(2 + 60)),)
    assert applied(limited("queued"), started()).commands == (
        ArmTimer("acme", ID, "start_to_close", at(3 + 300), 1),
    )
    # A redelivery to another worker is a new attempt with its own deadline.
    assert applied(limited("running", attempts=1), started(2, "w-2")).commands == (
        ArmTimer("acme", ID, "start_to_close", at(3 + 300), 2),
    )


def test_no_timeouts_no_timers() -> None:
    assert applied(record("pending"), queued()).commands == ()
    assert applied(record("queued"), started()).commands == ()


@pytest.mark.parametrize("state", ["queued", "running", "succeeded", "cancelled", "rejected"])
def test_an_approval_timer_for_a_task_no_longer_parked_changes_nothing(state: TaskState) -> None:
    current = limited(state, attempts=1)
    result = applied(current, fired("approval"))
    assert result.record is current and result.commands == ()


def test_an_approval_timer_rejects_a_task_still_parked_as_a_person_would() -> None:
    (command,) = applied(limited("awaiting_approval"), fired("approval")).commands
    assert isinstance(command, Decide)
    assert command.decision.approved is False and command.decision.by == APPROVAL_TIMEOUT_BY
    assert command.decision.task_id == ID and command.decision.tenant == "acme"


def test_schedule_to_start_ends_a_task_still_queued() -> None:
    current = limited("queued")
    result = applied(current, fired("schedule_to_start"))
    assert result.record is current  # the decision is an event of its own: the record moves when it is folded
    (command,) = result.commands
    assert isinstance(command, Record) and command.msg_id == f"{ID}.end"
    assert isinstance(command.event, TimedOut) and command.event.timer == "schedule_to_start"
    assert "60s" in command.event.reason
    assert applied(limited("running", attempts=1), fired("schedule_to_start")).commands == ()


def test_start_to_close_ends_only_the_attempt_it_was_armed_for() -> None:
    (command,) = applied(limited("running", attempts=2), fired("start_to_close", attempt=2)).commands
    assert isinstance(command, Record) and isinstance(command.event, TimedOut)
    assert command.event.timer == "start_to_close"
    # Attempt 1's timer, after the task was redelivered and started again: attempt 2 has its own.
    assert applied(limited("running", attempts=2), fired("start_to_close", attempt=1)).commands == ()
    assert applied(limited("succeeded", attempts=2), fired("start_to_close", attempt=2)).commands == ()


def test_the_same_event_on_the_same_record_decides_the_same_thing() -> None:
    # What makes doing the commands again after a crash safe: same record, same event, same commands.
    current = limited("running", attempts=1)
    assert step(current, fired("start_to_close", 1), 11) == step(current, fired("start_to_close", 1), 11)


def test_cancelling_a_queued_task_releases_its_hold() -> None:
    current = limited("queued", reservation_id="r-1")
    result = applied(current, cancelled())
    assert result.record.state == "cancelled" and result.record.cancelled_by == "alice"
    assert result.commands == (ReleaseHold("acme", "r-1"),)


def test_cancelling_a_parked_task_rejects_it_at_the_guard() -> None:
    (command,) = applied(limited("awaiting_approval"), cancelled()).commands
    assert isinstance(command, Decide)
    assert command.decision.approved is False and command.decision.by == "alice"


def test_stopping_a_running_task_tells_its_worker_and_leaves_the_hold_to_it() -> None:
    # The worker stops, pays for what it used and releases the rest: a release here makes its commit late.
    for stop in (cancelled(), timed_out()):
        assert applied(limited("running", attempts=1, reservation_id="r-1"), stop).commands == (
            StopWork(stop),
        )


def test_timing_out_a_queued_task_releases_its_hold() -> None:
    result = applied(limited("queued", reservation_id="r-1"), timed_out())
    assert result.record.state == "timed_out"
    assert result.commands == (ReleaseHold("acme", "r-1"),)


@pytest.mark.parametrize("state", ["cancelled", "timed_out"])
def test_a_task_queued_after_it_was_stopped_gives_its_hold_back(state: TaskState) -> None:
    result = step(limited(state), queued(), 11)
    assert isinstance(result, Refused)
    assert result.commands == (ReleaseHold("acme", "r-1"),)


@pytest.mark.parametrize("state", ["cancelled", "timed_out"])
def test_a_stopped_tasks_late_outcome_is_paid_usage_not_a_new_state(state: TaskState) -> None:
    done = applied(limited(state, attempts=1), succeeded()).record
    assert done.state == state and done.cost_micro_usd == 330 and done.usage == succeeded().usage
    stopped = applied(limited(state, attempts=1), failed()).record
    assert stopped.state == state and stopped.cost_micro_usd == 7 and stopped.error == "exit 1"


def test_a_cancel_after_the_end_is_refused() -> None:
    assert isinstance(step(limited("succeeded"), Cancelled(task_id=ID, tenant="acme", at=at(9)), 11), Refused)


def test_queued_without_a_hold_after_a_stop_has_nothing_to_release() -> None:
    event = Queued(task_id=ID, tenant="acme", at=at(2), role="implementer", decision=APPROVE)
    result = step(limited("cancelled"), event, 11)
    assert isinstance(result, Refused) and result.commands == ()


def test_started_keeps_working_without_a_record_of_timeouts() -> None:
    assert applied(record("queued"), Started(task_id=ID, tenant="acme", at=at(3), worker="w")).commands == ()
