"""The task state machine: fold one lifecycle event into a task's record, or refuse it (pure, no I/O).

    pending -> rejected | awaiting_approval | queued | failed
    awaiting_approval -> queued | rejected
    queued -> running | failed | timed_out | rejected   (timed_out: no agent started it in time;
                                                   rejected: the guard withdrew a verdict it could not
                                                   carry out)
    running -> succeeded | failed | timed_out      (running -> running: a redelivered task started again)
    running -> queued                              (a human queue's task released, or its lease ran out;
                                                   an agent's task handed off to a human queue)
    cancelled from any state that is not terminal; nothing leaves a terminal state.

`failed` is also allowed before `running` so that a task whose request or assignment could never be
handled (dead-lettered by the guard or an agent) still ends in a state anyone can read.

Folding an event may also decide something: the commands an Applied (or Refused) step carries are what the
orchestrator must do about it (arm a timer, end the task, release its hold, send the approval timeout's
rejection). They are data, derived only from the record and the event, so doing them again after a crash
derives the same commands with the same message ids and changes nothing the second time.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from msgspec import structs

from maestro import topics
from maestro.topics import end_msg_id
from proto.v1 import (
    APPROVAL_TIMEOUT_BY,
    Accepted,
    ApprovalDecision,
    AttemptFailed,
    AwaitingApproval,
    Cancelled,
    Claimed,
    Decision,
    Escalated,
    Failed,
    HandedOff,
    Heartbeat,
    Queued,
    Rejected,
    Released,
    Retrying,
    Started,
    Succeeded,
    TaskEvent,
    TaskRecord,
    TaskState,
    TimedOut,
    TimerFired,
    TimerKind,
    separate,
)
from proto.v1.humans import HumanWork, Notification
from proto.v1.ids import HUMAN_PREFIX, is_human, queue_of
from proto.v1.tasks import NON_RETRYABLE, RetryPolicy, SlaKind

TRANSITIONS: Mapping[TaskState, frozenset[TaskState]] = {
    "pending": frozenset({"rejected", "awaiting_approval", "queued", "failed", "cancelled"}),
    "awaiting_approval": frozenset({"queued", "rejected", "cancelled"}),
    "queued": frozenset({"running", "failed", "timed_out", "cancelled", "rejected"}),
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
class ArmTimer:
    """Arm (or re-arm: one timer per task and kind) a durable timer that comes due as TimerFired at `due`."""

    tenant: str
    task_id: str
    timer: TimerKind
    due: datetime
    attempt: int = 0


@dataclass(frozen=True)
class Record:
    """Store an event the orchestrator decided on the task's events subject, once (`msg_id`)."""

    event: TaskEvent
    msg_id: str


@dataclass(frozen=True)
class ReleaseHold:
    """Give back the budget a task holds: it ended before its work could be paid for."""

    tenant: str
    reservation_id: str


@dataclass(frozen=True)
class Decide:
    """Send the guard a decision on a task awaiting approval, as a person's arrives (the first one wins)."""

    decision: ApprovalDecision


@dataclass(frozen=True)
class Redispatch:
    """Hand the task to its role's agents again as `attempt`, at `due`: hold its estimate for the attempt,
    schedule its assignment (which the failed attempt's worker kept) and record Retrying. When the budget
    will not hold it, or the assignment was not kept, the task fails instead."""

    tenant: str
    task_id: str
    role: str
    model: str
    attempt: int
    due: datetime
    estimate_micro_usd: int
    error: str


@dataclass(frozen=True)
class StopWork:
    """Tell the worker running the task to stop (a core NATS notice): it was cancelled or timed out."""

    event: Cancelled | TimedOut


@dataclass(frozen=True)
class ExpireLease:
    """Return a human task to its queue: claim `claim`'s lease ran out (unless, read again, it was renewed,
    completed or released meanwhile)."""

    tenant: str
    task_id: str
    claim: int


@dataclass(frozen=True)
class Notify:
    """Hand the notifier a notification, once (`msg_id`): it delivers it off the events' path."""

    notification: Notification
    msg_id: str


Command = ArmTimer | Record | ReleaseHold | Decide | Redispatch | StopWork | ExpireLease | Notify


@dataclass(frozen=True)
class Applied:
    """The event moved the task: `record` is its new record, `previous` its state before (None if new)."""

    record: TaskRecord
    previous: TaskState | None
    commands: tuple[Command, ...] = ()

    @property
    def changed_state(self) -> bool:
        """Whether the task entered a new state (a heartbeat or a restart on redelivery does not)."""
        return self.record.state != self.previous


@dataclass(frozen=True)
class Refused:
    """The event is not legal for the task as it stands; the record is unchanged.

    `early` means the event may become legal once an event stored before it is applied (it overtook
    that event, e.g. across replicas or after a retry), so it is worth delivering again a little later.
    `commands` repair what the refused event left behind (a hold the guard took for a task already ended).
    """

    reason: str
    early: bool = False
    commands: tuple[Command, ...] = ()


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
    if isinstance(event, Queued) and event.accepted is not None and record is None:
        # Accepted and queued at once, stored as one event: the task is created, then queued. (A task whose
        # acceptance was stored on its own before, as the budget kept it waiting, is only queued.)
        accepted = event.accepted
        if accepted.task_id != event.task_id:
            return Refused(f"queued for task {event.task_id} with the acceptance of {accepted.task_id}")
        # Created as if stored just before, so that the Queued part at `seq` is folded, not a duplicate.
        _, queued = separate(event)
        result = step(_created(accepted, seq - 1), queued, seq)
        return dataclasses.replace(result, previous=None) if isinstance(result, Applied) else result
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
        case AwaitingApproval(decision=decision, reason=reason, expires_at=expires_at):
            parked = _move(record, "awaiting_approval", seq, at, **_verdict(decision), reason=reason)
            if expires_at is None:
                return parked
            return _then(parked, ArmTimer(record.tenant, record.id, "approval", expires_at))
        case Queued(decision=decision, reservation_id=reservation_id) as queued:
            if record.state in _STOPPED and reservation_id:
                # The guard queued it (and took a hold) while it was being cancelled: give the hold back.
                return Refused(
                    f"queued after it was {record.state}",
                    commands=(ReleaseHold(record.tenant, reservation_id),),
                )
            moved = _move(
                record,
                "queued",
                seq,
                at,
                **_verdict(decision),
                reservation_id=reservation_id,
                approved_by=queued.approved_by,
                approved_at=queued.approved_at,
                approval_reason=queued.approval_reason,
                queued_at=at,
                estimate_micro_usd=decision.estimate_micro_usd,
                max_plan_subtasks=decision.max_plan_subtasks,
            )
            wait = record.timeouts.schedule_to_start_s if record.timeouts else None
            timers = (
                [ArmTimer(record.tenant, record.id, "schedule_to_start", _after(at, wait))] if wait else []
            )
            to_claim = record.human.time_to_claim_s if record.human else None
            if to_claim is not None and "claim" not in record.escalations:
                timers.append(ArmTimer(record.tenant, record.id, "claim_sla", _after(at, to_claim)))
            return _then(moved, *timers)
        case Started(worker=worker, attempt=attempt, delivery=delivery):
            if record.state == "running":
                started = _restarted(record, worker, attempt, delivery, seq, at)
            else:
                started = _move(
                    record,
                    "running",
                    seq,
                    at,
                    worker=worker,
                    attempts=attempt,
                    deliveries=delivery,
                    started_at=record.started_at or at,
                    next_retry_at=None,
                )
            run = record.timeouts.start_to_close_s if record.timeouts else None
            if run is None:
                return started
            due = _after(at, run)
            return _then(started, ArmTimer(record.tenant, record.id, "start_to_close", due, attempt))
        case Heartbeat():
            return _heartbeat(record, at)
        case Succeeded() | Failed() | AttemptFailed() if record.state in _STOPPED:
            return _late_outcome(record, event, seq)
        case AttemptFailed() as attempt_failed:
            return _attempt_failed(record, attempt_failed, seq)
        case Retrying(attempt=attempt, next_at=next_at, reservation_id=reservation_id):
            return _retrying(record, attempt, next_at, reservation_id, seq, at)
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
                cost_micro_usd=record.cost_micro_usd + done.cost_micro_usd,
                artifacts=done.artifacts,
                next_retry_at=None,
                finished_at=at,
                rails=[*record.rails, *done.rails],
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
                usage=failed.usage or record.usage,
                cost_micro_usd=record.cost_micro_usd + failed.cost_micro_usd,
                finished_at=at,
                next_retry_at=None,
                rails=[*record.rails, *failed.rails],
            )
        case Cancelled(by=by, reason=reason):
            why = reason or (f"cancelled by {by}" if by else "cancelled")
            stopped = _move(record, "cancelled", seq, at, reason=why, finished_at=at, cancelled_by=by)
            return _then(stopped, *_unwind(record, event, by or "cancel", why, at))
        case TimedOut(reason=reason):
            why = reason or "timed out"
            stopped = _move(record, "timed_out", seq, at, reason=why, finished_at=at)
            return _then(stopped, *_unwind(record, event, "timeout", why, at))
        case TimerFired():
            return Applied(record, record.state, _on_timer(record, event))
        case Claimed() as claimed:
            return _claimed(record, claimed, seq)
        case Released() as released:
            return _released(record, released, seq)
        case HandedOff() as handed:
            return _handed_off(record, handed, seq)
        case Escalated(sla=sla, to=to):
            widened = [*record.widened_to, to] if to and to not in record.widened_to else record.widened_to
            noted = structs.replace(
                record,
                escalations=sorted({*record.escalations, sla}),
                widened_to=widened,
                updated_at=at,
                last_event_seq=seq,
            )
            return Applied(noted, record.state)
    return Refused(f"unknown event {type(event).__name__}")  # pragma: no cover - the union is exhaustive


_STOPPED: frozenset[TaskState] = frozenset({"cancelled", "timed_out"})
"""Ended by the orchestrator, possibly while a worker still ran it: its late outcome is paid usage."""


def fold(stored: Iterable[tuple[int, TaskEvent]]) -> TaskRecord | None:
    """The record a task's stored events (each with its stream sequence, oldest first) make, as the
    orchestrator folds them (without the commands it carries out): what a reader is answered with while the
    stored record still lags the events (MAESTRO_RECORD_LINGER_S); None when they make none."""
    record: TaskRecord | None = None
    for seq, event in stored:
        result = step(record, event, seq, first=record is None)
        if isinstance(result, Applied):
            record = result.record
    return record


def _after(at: datetime, seconds: float) -> datetime:
    return at + timedelta(seconds=seconds)


def _then(result: Step, *commands: Command) -> Step:
    """`result` with `commands` to do, when it applied."""
    if isinstance(result, Applied) and commands:
        return Applied(result.record, result.previous, result.commands + commands)
    return result


def _unwind(
    record: TaskRecord, stop: Cancelled | TimedOut, by: str, why: str, at: datetime
) -> tuple[Command, ...]:
    """What a task ended by the orchestrator leaves to undo, by the state it was in.

    Queued: its hold (no worker will pay from it). Awaiting approval: the guard still holds the request, so it
    is rejected there as a person would (if a person approved first, the Queued that follows is refused and
    its hold released). Running: the worker is told to stop; it pays for what it used and releases the rest
    itself.
    """
    if record.state == "running":
        return (StopWork(stop),)
    if record.state == "queued" and record.reservation_id:
        return (ReleaseHold(record.tenant, record.reservation_id),)
    if record.state == "awaiting_approval":
        decision = ApprovalDecision(
            task_id=record.id, tenant=record.tenant, approved=False, by=by[:256], reason=why[:4096], at=at
        )
        return (Decide(decision),)
    return ()


def _on_timer(record: TaskRecord, fired: TimerFired) -> tuple[Command, ...]:
    """What a timer that came due decides: nothing when the task has moved on since it was armed."""
    timeouts = record.timeouts
    if fired.timer == "approval" and record.state == "awaiting_approval":
        decision = ApprovalDecision(
            task_id=record.id,
            tenant=record.tenant,
            approved=False,
            by=APPROVAL_TIMEOUT_BY,
            reason="nobody decided before the approval deadline",
            at=fired.at,
        )
        return (Decide(decision),)
    if fired.timer == "schedule_to_start" and record.state == "queued" and timeouts:
        why = f"no agent started it within {timeouts.schedule_to_start_s:g}s of being queued"
        return (_timed_out(record, fired, why),)
    if (
        fired.timer == "start_to_close"
        and record.state == "running"
        and record.attempts == fired.attempt
        and timeouts
    ):
        why = f"attempt {fired.attempt} was still running {timeouts.start_to_close_s:g}s after it started"
        return (_timed_out(record, fired, why),)
    if (
        fired.timer == "lease"
        and record.state == "running"
        and record.claims == fired.attempt
        and record.lease_until is not None
        and record.lease_until <= fired.at
    ):
        return (ExpireLease(record.tenant, record.id, fired.attempt),)
    if fired.timer == "claim_sla" and record.state == "queued" and "claim" not in record.escalations:
        return _escalate(record, fired, "claim")
    if (
        fired.timer == "complete_sla"
        and record.state == "running"
        and record.claims == fired.attempt
        and "complete" not in record.escalations
    ):
        return _escalate(record, fired, "complete")
    return ()


def _escalate(record: TaskRecord, fired: TimerFired, sla: SlaKind) -> tuple[Command, ...]:
    """What a breached SLA does, once: record it, tell the notifier, and widen the queue or fail the task
    as the task's policy says (its message ids make each happen once however often it is decided)."""
    human = record.human or HumanWork()
    limit = human.time_to_claim_s if sla == "claim" else human.time_to_complete_s
    since = "being queued" if sla == "claim" else f"being claimed by {record.worker}"
    done = "claimed" if sla == "claim" else "completed"
    why = f"not {done} within {limit:g}s of {since}"
    to = human.escalate_to if human.on_breach == "widen" else None
    tenant, task_id = record.tenant, record.id
    escalated = Escalated(
        task_id=task_id, tenant=tenant, at=fired.at, sla=sla, action=human.on_breach, to=to, reason=why
    )
    notice = Notification(
        task_id=task_id,
        tenant=tenant,
        queue=queue_of(record.role or ""),
        sla=sla,
        action=human.on_breach,
        at=fired.at,
        to=to,
        held_by=record.worker if record.state == "running" else "",
        reason=why,
    )
    slot = topics.event_msg_id(task_id, f"escalated-{sla}")
    commands: list[Command] = [Record(escalated, slot), Notify(notice, slot)]
    if human.on_breach == "fail":
        failed = Failed(task_id=task_id, tenant=tenant, at=fired.at, error=why, failure="timeout")
        commands.append(Record(failed, end_msg_id(task_id)))
    return tuple(commands)


def _claimed(record: TaskRecord, claimed: Claimed, seq: int) -> Step:
    """A person took a human task (running, theirs until the lease ends), or renewed their claim."""
    if not is_human(record.role or ""):
        return Refused(f"a {record.role} task is done by agents: nobody claims it")
    lease = ArmTimer(record.tenant, record.id, "lease", claimed.lease_until, claimed.claim)
    if record.state == "running" and (claimed.claim, claimed.by) == (record.claims, record.worker):
        renewed = structs.replace(
            record, lease_until=claimed.lease_until, updated_at=claimed.at, last_event_seq=seq
        )
        return Applied(renewed, record.state, (lease,))
    if claimed.claim != record.claims + 1:
        return Refused(f"claim {claimed.claim} of a task claimed {record.claims} times", early=True)
    moved = _move(
        record,
        "running",
        seq,
        claimed.at,
        worker=claimed.by,
        started_at=record.started_at or claimed.at,
        lease_until=claimed.lease_until,
        claims=claimed.claim,
        attempts=max(record.attempts, 1),
    )
    to_complete = record.human.time_to_complete_s if record.human else None
    if to_complete is None or "complete" in record.escalations:
        return _then(moved, lease)
    due = _after(claimed.at, to_complete)
    return _then(moved, lease, ArmTimer(record.tenant, record.id, "complete_sla", due, claimed.claim))


def _handed_off(record: TaskRecord, handed: HandedOff, seq: int) -> Step:
    """The agent could not proceed: the task is a human queue's from now on, waiting for a person, its
    attempt paid for; its time to claim starts now."""
    if record.state != "running" or is_human(record.role or ""):
        return Refused(f"a hand-off of a {record.state} {record.role} task")
    back = structs.replace(
        record,
        state="queued",
        role=f"{HUMAN_PREFIX}{handed.queue}",
        human=handed.human,
        worker="",
        reason=handed.reason,
        usage=handed.usage or record.usage,
        cost_micro_usd=record.cost_micro_usd + handed.cost_micro_usd,
        attempts=max(record.attempts, handed.attempt),
        queued_at=handed.at,
        updated_at=handed.at,
        last_event_seq=seq,
    )
    to_claim = handed.human.time_to_claim_s
    if to_claim is None:
        return Applied(back, record.state)
    return Applied(
        back, record.state, (ArmTimer(record.tenant, record.id, "claim_sla", _after(handed.at, to_claim)),)
    )


def _released(record: TaskRecord, released: Released, seq: int) -> Step:
    """A claim ended without an answer: the task is back in its queue (a move no agent's task makes)."""
    if record.state != "running" or released.claim != record.claims or not is_human(record.role or ""):
        return Refused(f"release of claim {released.claim} of a {record.state} task (claim {record.claims})")
    back = structs.replace(
        record, state="queued", worker="", lease_until=None, updated_at=released.at, last_event_seq=seq
    )
    return Applied(back, record.state)


def _timed_out(record: TaskRecord, fired: TimerFired, why: str) -> Record:
    event = TimedOut(task_id=record.id, tenant=record.tenant, at=fired.at, reason=why, timer=fired.timer)
    return Record(event, end_msg_id(record.id))


def _late_outcome(record: TaskRecord, outcome: Succeeded | Failed | AttemptFailed, seq: int) -> Step:
    """A worker's outcome after the task was cancelled or timed out: its usage is kept, its state is not."""
    new = structs.replace(
        record,
        worker=outcome.worker or record.worker,
        usage=outcome.usage or record.usage,
        cost_micro_usd=record.cost_micro_usd + outcome.cost_micro_usd,
        error=record.error if isinstance(outcome, Succeeded) else outcome.error,
        updated_at=max(record.updated_at, outcome.at),
        last_event_seq=seq,
        rails=[*record.rails, *outcome.rails],
    )
    return Applied(new, record.state)


def _created(event: Accepted, seq: int) -> TaskRecord:
    return structs.replace(
        _pending(event),
        role=event.role,
        parent=event.parent,
        labels=event.labels,
        model=event.model,
        trace_id=event.trace_id,
        timeouts=event.timeouts,
        retry=event.retry,
        human=event.human,
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


def _restarted(record: TaskRecord, worker: str, attempt: int, delivery: int, seq: int, at: datetime) -> Step:
    # The attempt was handed to a worker again (the last one died or ran out of time): it keeps running.
    if (attempt, delivery) <= (record.attempts, record.deliveries):
        return Refused(
            f"already running attempt {record.attempts} (delivery {record.deliveries}); "
            f"started attempt {attempt} (delivery {delivery}) again"
        )
    new = structs.replace(
        record, worker=worker, attempts=attempt, deliveries=delivery, updated_at=at, last_event_seq=seq
    )
    return Applied(new, record.state)


def _attempt_failed(record: TaskRecord, failed: AttemptFailed, seq: int) -> Step:
    """Pay for the attempt; retry the task when its policy allows, else fail it."""
    if record.state not in ("running", "queued"):
        return Refused(f"attempt {failed.attempt} failed for a task that is {record.state}")
    paid = structs.replace(
        record,
        usage=failed.usage or record.usage,
        cost_micro_usd=record.cost_micro_usd + failed.cost_micro_usd,
        error=failed.error,
        worker=failed.worker or record.worker,
        updated_at=max(record.updated_at, failed.at),
        last_event_seq=seq,
        rails=[*record.rails, *failed.rails],
    )
    if failed.attempt < record.attempts:
        return Applied(paid, record.state)  # an attempt the task has moved past: paid, nothing to decide
    policy = record.retry
    if policy is not None and failed.failure not in NON_RETRYABLE and failed.attempt < policy.max_attempts:
        due = _after(failed.at, backoff_s(policy, record.id, failed.attempt))
        retry = Redispatch(
            tenant=record.tenant,
            task_id=record.id,
            role=record.role or "",
            model=record.model or "",
            attempt=failed.attempt + 1,
            due=due,
            estimate_micro_usd=record.estimate_micro_usd,
            error=failed.error,
        )
        return Applied(paid, record.state, (retry,))
    tried = f" after {failed.attempt} attempts" if failed.attempt > 1 else ""
    final = Failed(
        task_id=record.id,
        tenant=record.tenant,
        at=failed.at,
        error=failed.error if not tried else f"{failed.error} (failed{tried})",
        worker=failed.worker,
        failure=failed.failure,
        attempt=failed.attempt,
    )
    return Applied(paid, record.state, (Record(final, end_msg_id(record.id)),))


def _retrying(
    record: TaskRecord, attempt: int, next_at: datetime, reservation_id: str, seq: int, at: datetime
) -> Step:
    if record.state not in ("running", "queued") or attempt != record.attempts + 1:
        return Refused(
            f"retry as attempt {attempt} of a task that is {record.state} at attempt {record.attempts}"
        )
    waiting = structs.replace(
        record,
        state="queued",
        reservation_id=reservation_id or record.reservation_id,
        next_retry_at=next_at,
        updated_at=at,
        last_event_seq=seq,
    )
    wait = record.timeouts.schedule_to_start_s if record.timeouts else None
    if wait is None:
        return Applied(waiting, record.state)
    timer = ArmTimer(record.tenant, record.id, "schedule_to_start", _after(next_at, wait))
    return Applied(waiting, record.state, (timer,))


def backoff_s(policy: RetryPolicy, task_id: str, attempt: int) -> float:
    """Seconds from attempt `attempt`'s failure to the next attempt: exponential, capped, jittered by a
    fraction that depends only on the task and the attempt (so deciding again decides the same)."""
    base = min(policy.initial_backoff_s * policy.multiplier ** (attempt - 1), policy.max_backoff_s)
    digest = hashlib.blake2b(f"{task_id}/{attempt}".encode(), digest_size=8).digest()
    unit = int.from_bytes(digest, "big") / 2**64  # in [0, 1)
    return max(0.0, base * (1 + policy.jitter * (2 * unit - 1)))


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
