"""The state machine, no server: every legal transition, a table of illegal ones, duplicates, redelivery."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from msgspec import structs

from maestro.lifecycle import TRANSITIONS, Applied, Duplicate, Refused, step
from proto.v1 import (
    Accepted,
    ArtifactRef,
    AwaitingApproval,
    Cancelled,
    Decision,
    Failed,
    Heartbeat,
    Queued,
    Rejected,
    Started,
    Succeeded,
    TaskEvent,
    TaskRecord,
    TaskState,
    TimedOut,
    Usage,
    Violation,
    separate,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ID = "t-1"
ALLOW = Decision(verdict="allow", policy_version="v1")
DENY = Decision(
    verdict="deny",
    violations=[
        Violation(policy="secrets", rule_id="secrets.aws-key"),
        Violation(policy="size", rule_id="size"),
    ],
)
APPROVE = Decision(verdict="approve", violations=[Violation(policy="cost", rule_id="cost.over")])


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def accepted(**kw: object) -> Accepted:
    fields: dict[str, object] = {
        "task_id": ID,
        "tenant": "acme",
        "at": at(0),
        "role": "implementer",
        "parent": "t-0",
        "labels": {"repo": "r"},
        "model": "m-1",
    }
    fields.update(kw)
    return Accepted(**fields)  # type: ignore[arg-type]


def rejected() -> Rejected:
    return Rejected(task_id=ID, tenant="acme", at=at(1), decision=DENY, reason="leaked key")


def awaiting() -> AwaitingApproval:
    return AwaitingApproval(task_id=ID, tenant="acme", at=at(1), decision=APPROVE, reason="costly")


def queued() -> Queued:
    return Queued(
        task_id=ID, tenant="acme", at=at(2), role="implementer", decision=ALLOW, reservation_id="r-1"
    )


def started(attempt: int = 1, worker: str = "w-1") -> Started:
    return Started(task_id=ID, tenant="acme", at=at(3), worker=worker, attempt=attempt)


def heartbeat() -> Heartbeat:
    return Heartbeat(task_id=ID, tenant="acme", at=at(4), worker="w-1")


def succeeded() -> Succeeded:
    return Succeeded(
        task_id=ID,
        tenant="acme",
        at=at(5),
        worker="w-1",
        output="done",
        usage=Usage(model="m-1", input_tokens=10, output_tokens=20),
        cost_micro_usd=330,
        artifacts=[ArtifactRef(name="patch.diff", size=12)],
    )


def failed() -> Failed:
    return Failed(task_id=ID, tenant="acme", at=at(5), error="exit 1", worker="w-1", cost_micro_usd=7)


def cancelled() -> Cancelled:
    return Cancelled(task_id=ID, tenant="acme", at=at(5), by="alice")


def timed_out() -> TimedOut:
    return TimedOut(task_id=ID, tenant="acme", at=at(5), reason="over 300s")


def record(state: TaskState, seq: int = 10, attempts: int = 0) -> TaskRecord:
    return TaskRecord(
        id=ID,
        tenant="acme",
        state=state,
        created_at=at(0),
        updated_at=at(0),
        role="implementer",
        attempts=attempts,
        deliveries=1 if attempts else 0,
        last_event_seq=seq,
    )


def applied(result: object) -> TaskRecord:
    assert isinstance(result, Applied), result
    return result.record


def run(*events: TaskEvent) -> TaskRecord:
    """Fold events stored at sequences 1, 2, 3, ... from no record."""
    current: TaskRecord | None = None
    for seq, event in enumerate(events, start=1):
        current = applied(step(current, event, seq))
    assert current is not None
    return current


# -- legal transitions ---------------------------------------------------------------------------------


def test_accepted_creates_a_pending_record_with_what_the_task_is() -> None:
    result = step(None, accepted(), 7)
    new = applied(result)
    assert (new.id, new.tenant, new.state) == (ID, "acme", "pending")
    assert (new.role, new.parent, new.labels, new.model) == ("implementer", "t-0", {"repo": "r"}, "m-1")
    assert new.created_at == new.updated_at == at(0)
    assert new.last_event_seq == 7
    assert isinstance(result, Applied) and result.previous is None and result.changed_state


def test_a_queued_event_carrying_its_acceptance_creates_the_record_then_queues_it() -> None:
    both = structs.replace(queued(), accepted=accepted())
    result = step(None, both, 7)
    new = applied(result)
    assert (new.state, new.role, new.parent, new.labels, new.model) == (
        "queued",
        "implementer",
        "t-0",
        {"repo": "r"},
        "m-1",
    )
    assert (new.reservation_id, new.created_at, new.updated_at, new.last_event_seq) == (
        "r-1",
        at(0),
        at(2),
        7,
    )
    assert isinstance(result, Applied) and result.previous is None
    # Its acceptance stored on its own before (the budget kept it waiting): only queued, the same record.
    assert run(accepted(), both) == structs.replace(new, last_event_seq=2)
    assert separate(both) == (accepted(), queued()) and separate(queued()) == (queued(),)
    # Another task's acceptance inside is refused.
    assert isinstance(step(None, structs.replace(queued(), accepted=accepted(task_id="t-other")), 7), Refused)


def test_the_happy_path_reaches_succeeded_with_every_field_set() -> None:
    done = run(accepted(), queued(), started(), heartbeat(), succeeded())
    assert done.state == "succeeded"
    assert (done.verdict, done.reservation_id, done.worker, done.attempts) == ("allow", "r-1", "w-1", 1)
    assert done.output == "done"
    assert done.usage == Usage(model="m-1", input_tokens=10, output_tokens=20)
    assert done.cost_micro_usd == 330
    assert done.artifacts == [ArtifactRef(name="patch.diff", size=12)]
    assert (done.started_at, done.finished_at, done.updated_at) == (at(3), at(5), at(5))
    assert done.last_event_seq == 5


def test_rejected_keeps_the_verdict_and_every_violated_rule() -> None:
    done = run(accepted(), rejected())
    assert (done.state, done.verdict, done.reason) == ("rejected", "deny", "leaked key")
    assert done.violations == ["secrets.aws-key", "size"]
    assert done.finished_at == at(1)


def test_awaiting_approval_then_queued_or_rejected() -> None:
    assert run(accepted(), awaiting()).state == "awaiting_approval"
    assert run(accepted(), awaiting()).violations == ["cost.over"]
    assert run(accepted(), awaiting(), queued()).state == "queued"
    assert run(accepted(), awaiting(), rejected()).state == "rejected"


def test_failed_records_the_error_and_what_was_spent() -> None:
    done = run(accepted(), queued(), started(), failed())
    assert (done.state, done.error, done.cost_micro_usd, done.finished_at) == ("failed", "exit 1", 7, at(5))


def test_a_task_that_never_ran_can_still_fail() -> None:
    assert run(accepted(), failed()).state == "failed"
    assert run(accepted(), queued(), failed()).state == "failed"


def test_timed_out_from_running() -> None:
    done = run(accepted(), queued(), started(), timed_out())
    assert (done.state, done.reason) == ("timed_out", "over 300s")


@pytest.mark.parametrize(
    "before",
    [
        [accepted()],
        [accepted(), awaiting()],
        [accepted(), queued()],
        [accepted(), queued(), started()],
    ],
    ids=["pending", "awaiting_approval", "queued", "running"],
)
def test_cancelled_from_every_state_that_is_not_terminal(before: list[TaskEvent]) -> None:
    done = run(*before, cancelled())
    assert (done.state, done.reason, done.finished_at) == ("cancelled", "cancelled by alice", at(5))


def test_every_transition_in_the_table_is_reachable_by_some_event() -> None:
    targets = {state for nexts in TRANSITIONS.values() for state in nexts}
    assert targets == {
        "rejected",
        "awaiting_approval",
        "queued",
        "running",
        "succeeded",
        "failed",
        "timed_out",
        "cancelled",
    }


# -- illegal transitions -----------------------------------------------------------------------------------

ILLEGAL: list[tuple[TaskState, TaskEvent, bool]] = [
    # (state, event, early: may become legal once an event stored before it is applied)
    ("rejected", succeeded(), False),
    ("rejected", queued(), False),
    ("rejected", started(), False),
    ("rejected", cancelled(), False),
    ("succeeded", failed(), False),
    ("succeeded", started(2), False),
    ("succeeded", cancelled(), False),
    ("failed", succeeded(), False),
    ("cancelled", started(), False),
    ("cancelled", heartbeat(), False),
    ("timed_out", cancelled(), False),
    ("queued", queued(), False),
    ("queued", awaiting(), False),
    ("running", queued(), False),
    ("running", rejected(), False),
    ("awaiting_approval", awaiting(), False),
    ("pending", heartbeat(), False),
    ("queued", heartbeat(), False),
    ("pending", started(), True),
    ("pending", succeeded(), True),
    ("pending", timed_out(), True),
    ("awaiting_approval", started(), True),
    ("queued", succeeded(), True),
]


@pytest.mark.parametrize(
    ("state", "event", "early"), ILLEGAL, ids=[f"{s}+{type(e).__name__}" for s, e, _ in ILLEGAL]
)
def test_illegal_transitions_are_refused(state: TaskState, event: TaskEvent, early: bool) -> None:
    result = step(record(state), event, 11)
    assert isinstance(result, Refused), result
    assert result.early is early
    assert result.reason


def test_accepted_twice_is_refused() -> None:
    result = step(record("queued"), accepted(), 11)
    assert isinstance(result, Refused) and not result.early


def test_an_event_before_accepted_is_refused_as_early() -> None:
    for event in (queued(), rejected(), started(), succeeded(), cancelled()):
        result = step(None, event, 1)
        assert isinstance(result, Refused) and result.early, event


def test_an_event_naming_another_tenant_is_refused() -> None:
    other = Queued(task_id=ID, tenant="evil", at=at(2), role="implementer", decision=ALLOW)
    result = step(record("pending"), other, 11)
    assert isinstance(result, Refused) and not result.early


# -- duplicates and redelivery ---------------------------------------------------------------------------


@pytest.mark.parametrize("seq", [1, 9, 10])
def test_an_event_at_or_before_the_last_applied_sequence_is_a_duplicate(seq: int) -> None:
    assert step(record("running", seq=10, attempts=1), succeeded(), seq) == Duplicate(10)
    assert step(record("pending", seq=10), accepted(), seq) == Duplicate(10)


def test_started_again_with_a_higher_attempt_is_a_redelivery() -> None:
    running = record("running", seq=10, attempts=1)
    result = step(running, started(attempt=2, worker="w-2"), 12)
    again = applied(result)
    assert (again.state, again.attempts, again.worker, again.last_event_seq) == ("running", 2, "w-2", 12)
    assert isinstance(result, Applied) and not result.changed_state
    then = applied(step(again, succeeded(), 13))
    assert (then.state, then.attempts) == ("succeeded", 2)


def test_started_again_with_the_same_attempt_is_refused() -> None:
    result = step(record("running", seq=10, attempts=2), started(attempt=2), 12)
    assert isinstance(result, Refused) and not result.early


def test_heartbeat_only_moves_updated_at() -> None:
    running = record("running", seq=10, attempts=1)
    result = step(running, heartbeat(), 12)
    beat = applied(result)
    assert beat.updated_at == at(4)
    assert beat == structs.replace(running, updated_at=at(4))
    # It leaves last_event_seq alone, so an outcome stored before it is never mistaken for a duplicate.
    assert applied(step(beat, succeeded(), 11)).state == "succeeded"
    assert isinstance(result, Applied) and not result.changed_state


def test_with_nothing_stored_before_it_a_rejection_starts_the_record() -> None:
    rejected = Rejected(task_id="t-1", tenant="acme", at=at(1), decision=DENY, reason="invalid request")
    assert isinstance(step(None, rejected, 3), Refused)  # it may have overtaken Accepted: not yet
    result = step(None, rejected, 3, first=True)
    assert isinstance(result, Applied)
    assert (result.record.state, result.record.reason, result.record.last_event_seq) == (
        "rejected",
        "invalid request",
        3,
    )


def test_with_nothing_stored_before_it_any_other_event_is_refused_for_good() -> None:
    started = Started(task_id="t-1", tenant="acme", at=at(1), worker="w")
    assert step(None, started, 3) == Refused(
        "task.started for a task with no record (accepted comes first)", early=True
    )
    assert step(None, started, 3, first=True) == Refused(
        "task.started for a task with no record (accepted comes first)", early=False
    )


def test_a_verdict_the_guard_withdraws_after_queueing_ends_the_task_rejected() -> None:
    withdrawn = step(record("queued"), rejected(), 12)
    assert applied(withdrawn).state == "rejected"
