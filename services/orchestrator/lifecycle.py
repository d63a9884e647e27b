"""The task state machine: fold one lifecycle event into a task's record, or refuse it (pure, no I/O).

    pending -> rejected | awaiting_approval | queued | failed
    awaiting_approval -> queued | rejected
    queued -> running | failed
    running -> succeeded | failed | timed_out      (running -> running: a redelivered task started again)
    cancelled from any state that is not terminal; nothing leaves a terminal state.

`failed` is also allowed before `running` so that a task whose request or assignment could never be
handled (dead-lettered by the guard or an agent) still ends in a state anyone can read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from msgspec import structs

from proto.v1 import (
    Accepted,
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
)

TRANSITIONS: Mapping[TaskState, frozenset[TaskState]] = {
    "pending": frozenset({"rejected", "awaiting_approval", "queued", "failed", "cancelled"}),
    "awaiting_approval": frozenset({"queued", "rejected", "cancelled"}),
    "queued": frozenset({"running", "failed", "cancelled"}),
    "running": frozenset({"succeeded", "failed", "timed_out", "cancelled"}),
}


def _reachable(state: TaskState) -> frozenset[TaskState]:
    seen: set[TaskState] = set()
    todo = list(TRANSITIONS.get(state, ()))
    while todo:
        nxt = todo.pop()
        if nxt not in seen:
            seen.add(nxt)
            todo.extend(TRANSITIONS.get(nxt, ()))
    return frozenset(seen)


# States a task can still reach from each state, directly or not: an event that targets one of them
# but not a direct successor arrived before an event it depends on.
_REACHABLE: Mapping[TaskState, frozenset[TaskState]] = {state: _reachable(state) for state in TRANSITIONS}


@dataclass(frozen=True)
class Applied:
    """The event moved the task: `record` is its new record, `previous` its state before (None if new)."""

    record: TaskRecord
    previous: TaskState | None

    @property
    def changed_state(self) -> bool:
        """Whether the task entered a new state (a heartbeat or a restart on redelivery does not)."""
        return self.record.state != self.previous


@dataclass(frozen=True)
class Refused:
    """The event is not legal for the task as it stands; the record is unchanged.

    `early` means the event may become legal once an event stored before it is applied (it overtook
    that event, e.g. across replicas or after a retry), so it is worth delivering again a little later.
    """

    reason: str
    early: bool = False


@dataclass(frozen=True)
class Duplicate:
    """The event's stream sequence is not past the record's: it was applied already."""

    last_event_seq: int


Step = Applied | Refused | Duplicate


def step(record: TaskRecord | None, event: TaskEvent, seq: int, *, first: bool = False) -> Step:
    """Apply `event`, stored at stream sequence `seq`, to `record` (None when the task has no record).

    `first` says the events stream holds nothing of the task before `event`: a request refused before the
    guard could accept it (it did not decode) then starts its record with the rejection, so its sender can
    read why.
    """
    if record is not None and seq <= record.last_event_seq:
        return Duplicate(record.last_event_seq)
    if isinstance(event, Accepted):
        if record is not None:
            return Refused(f"task already exists (state {record.state})")
        return Applied(_created(event, seq), None)
    if record is None:
        if first and isinstance(event, Rejected):
            # As if it had been accepted with nothing known of it, then rejected.
            rejected = step(_pending(event), event, seq)
            return Applied(rejected.record, None) if isinstance(rejected, Applied) else rejected
        # Accepted is always stored first on the task's subject; this one may have overtaken it.
        return Refused(f"{kind(event)} for a task with no record (accepted comes first)", early=not first)
    if event.tenant != record.tenant:
        return Refused(f"{kind(event)} names tenant {event.tenant!r}, the task belongs to another")
    at = event.at
    match event:
        case Rejected(decision=decision, reason=reason, by=by):
            return _move(
                record,
                "rejected",
                seq,
                at,
                **_verdict(decision),
                reason=reason,
                finished_at=at,
                rejected_by=by,
            )
        case AwaitingApproval(decision=decision, reason=reason):
            return _move(record, "awaiting_approval", seq, at, **_verdict(decision), reason=reason)
        case Queued(decision=decision, reservation_id=reservation_id) as queued:
            return _move(
                record,
                "queued",
                seq,
                at,
                **_verdict(decision),
                reservation_id=reservation_id,
                approved_by=queued.approved_by,
                approved_at=queued.approved_at,
                approval_reason=queued.approval_reason,
            )
        case Started(worker=worker, attempt=attempt):
            if record.state == "running":
                return _restarted(record, worker, attempt, seq, at)
            return _move(record, "running", seq, at, worker=worker, attempts=attempt, started_at=at)
        case Heartbeat():
            return _heartbeat(record, at)
        case Succeeded() as done:
            return _move(
                record,
                "succeeded",
                seq,
                at,
                worker=done.worker or record.worker,
                attempts=max(record.attempts, done.attempt),
                output=done.output,
                usage=done.usage,
                cost_micro_usd=done.cost_micro_usd,
                artifacts=done.artifacts,
                finished_at=at,
            )
        case Failed() as failed:
            return _move(
                record,
                "failed",
                seq,
                at,
                worker=failed.worker or record.worker,
                attempts=max(record.attempts, failed.attempt),
                error=failed.error,
                usage=failed.usage,
                cost_micro_usd=failed.cost_micro_usd,
                finished_at=at,
            )
        case Cancelled(by=by, reason=reason):
            why = reason or (f"cancelled by {by}" if by else "cancelled")
            return _move(record, "cancelled", seq, at, reason=why, finished_at=at)
        case TimedOut(reason=reason):
            return _move(record, "timed_out", seq, at, reason=reason or "timed out", finished_at=at)
    return Refused(f"unknown event {type(event).__name__}")  # pragma: no cover - the union is exhaustive


def _created(event: Accepted, seq: int) -> TaskRecord:
    return structs.replace(
        _pending(event),
        role=event.role,
        parent=event.parent,
        labels=event.labels,
        model=event.model,
        trace_id=event.trace_id,
        last_event_seq=seq,
    )


def _pending(event: TaskEvent) -> TaskRecord:
    return TaskRecord(
        id=event.task_id, tenant=event.tenant, state="pending", created_at=event.at, updated_at=event.at
    )


def _move(record: TaskRecord, target: TaskState, seq: int, at: datetime, **changes: Any) -> Step:
    state = record.state
    if target not in TRANSITIONS.get(state, frozenset()):
        early = target in _REACHABLE.get(state, frozenset())
        return Refused(f"illegal transition {state} -> {target}", early=early)
    new = structs.replace(record, state=target, updated_at=at, last_event_seq=seq, **changes)
    return Applied(new, state)


def _restarted(record: TaskRecord, worker: str, attempt: int, seq: int, at: datetime) -> Step:
    # The task was redelivered to a worker (the last one died or ran out of time): it keeps running.
    if attempt <= record.attempts:
        return Refused(f"already running attempt {record.attempts}; started attempt {attempt} again")
    new = structs.replace(record, worker=worker, attempts=attempt, updated_at=at, last_event_seq=seq)
    return Applied(new, record.state)


def _heartbeat(record: TaskRecord, at: datetime) -> Step:
    if record.state != "running":
        return Refused(f"heartbeat for a task that is {record.state}")
    # A heartbeat leaves last_event_seq alone: it must never make an outcome stored just before it (and
    # still being retried) look like a duplicate.
    return Applied(structs.replace(record, updated_at=max(record.updated_at, at)), record.state)


def _verdict(decision: Decision) -> dict[str, Any]:
    return {"verdict": decision.verdict, "violations": [v.rule_id for v in decision.violations]}


def kind(event: TaskEvent) -> str:
    """The event's wire tag, e.g. `task.started`."""
    return str(type(event).__struct_config__.tag)
