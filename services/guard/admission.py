"""Admitting an allowed task: reserve its estimate, then queue it for its role, or reject it as over budget.

The guard's request path and its approval path both end here, so a task is admitted the same way
whether it was allowed at once or approved by a human later.
"""

from __future__ import annotations

from datetime import datetime

from msgspec import structs

from maestro import codec, topics
from maestro.bus import Bus
from maestro.errors import RemoteError, Retry
from proto.v1 import (
    Accepted,
    Decision,
    Queued,
    Reservation,
    Reserve,
    TaskAssignment,
    TaskRequest,
    Violation,
    reservation_id_for,
)
from proto.v1.ids import is_human
from proto.v1.workflows import escrow_task_id, step_name


def reason(decision: Decision) -> str:
    """One line naming the enforced rules broken and where (the first five), never the evidence."""
    enforced = [v for v in decision.violations if v.enforced]
    shown = "; ".join(f"{v.rule_id} at {v.location}" for v in enforced[:5])
    more = len(enforced) - 5
    return f"{decision.verdict}: {shown}" + (f" (and {more} more)" if more > 0 else "")


def escrow_of(request: TaskRequest) -> str | None:
    """The hold a workflow's step draws from (its workflow's escrow), or None for any other task."""
    if request.parent is None or step_name(request.id, request.parent) is None:
        return None
    return reservation_id_for(escrow_task_id(request.parent))


def hold_of(bus: Bus, request: TaskRequest, estimate_micro_usd: int, estimate_tokens: int) -> Reserve:
    """The hold that pays for the task's first attempt."""
    return Reserve(
        tenant=request.tenant,
        task_id=request.id,
        estimate_micro_usd=estimate_micro_usd,
        estimate_tokens=estimate_tokens,
        ttl_s=bus.settings.reservation_ttl_s,
        role=request.role,
        model=request.model or "",
        escrow=escrow_of(request),
    )


async def reserve(
    bus: Bus, request: TaskRequest, estimate_micro_usd: int, estimate_tokens: int
) -> Reservation | Reserve:
    """Hold the task's estimate; a reservation the budget refuses as invalid comes back not granted.

    When the tenant's ledger has no room for one more hold now (a backlog of its tasks holds them all) and a
    dispatcher hands the tasks over, the hold to make is given back instead, for the dispatcher to make
    when the task's turn comes: a tenant's backlog never stalls the guard for the other tenants.

    Raises Retry when the budget service cannot answer now (or has no room, without a dispatcher).
    """
    if is_human(request.role):
        # A person does it: no model runs, so nothing is held (its record says who did it and how long).
        return Reservation(tenant=request.tenant, task_id=request.id, granted=True)
    hold = hold_of(bus, request, estimate_micro_usd, estimate_tokens)
    try:
        return await bus.calls.request(topics.BUDGET_RESERVE, hold, key=request.tenant)
    except RemoteError as exc:
        if exc.code == 400:
            return Reservation(
                tenant=request.tenant, task_id=request.id, granted=False, reason=exc.description
            )
        if exc.code == 429 and bus.settings.fair_dispatch:
            return hold
        raise Retry(1.0, f"budget unavailable: {exc}") from None


def over_budget(request: TaskRequest, decision: Decision, reservation: Reservation) -> Decision:
    """The deny decision recorded when an allowed task does not fit its tenant's budget."""
    estimate = decision.estimate_micro_usd
    why = f": {reservation.reason}" if reservation.reason else ""
    return structs.replace(
        decision,
        verdict="deny",
        violations=[
            *decision.violations,
            Violation(
                policy="budget",
                rule_id="budget.insufficient",
                severity="medium",
                location="tenant",
                message=(
                    f"the estimated cost {estimate} micro-USD does not fit the "
                    f"{reservation.remaining_micro_usd} micro-USD left in the budget of {request.tenant}{why}"
                ),
                fix="raise the tenant's budget limit or wait for held reservations to settle",
            ),
        ],
    )


async def queue(
    bus: Bus,
    request: TaskRequest,
    decision: Decision,
    held: Reservation | Reserve,
    *,
    at: datetime,
    slot: str,
    traceparent: str | None,
    approved_by: str = "",
    approval_reason: str = "",
    accepted: Accepted | None = None,
) -> None:
    """Record the task as queued (with who approved it and why, when a human did), then hand it over;
    `held` is its granted reservation, or the hold its dispatcher is to make (see `reserve`); `accepted`,
    the task's acceptance when it is stored with the verdict as one event."""
    if isinstance(held, Reservation):
        reservation_id, deferred = held.reservation_id, None
    else:
        reservation_id, deferred = reservation_id_for(held.task_id, held.attempt), held
    stored = await bus.streams.publish(
        topics.EVENTS.at(request.tenant, request.id),
        Queued(
            task_id=request.id,
            tenant=request.tenant,
            at=at,
            role=request.role,
            decision=decision,
            reservation_id=reservation_id,
            approved_by=approved_by,
            approved_at=at if approved_by else None,
            approval_reason=approval_reason,
            accepted=accepted,
        ),
        msg_id=topics.event_msg_id(request.id, slot),
        traceparent=traceparent,
    )
    # After the Queued event is stored, so a worker's Started can never precede it in the audit log.
    await assign(
        bus,
        request,
        decision,
        reservation_id,
        queued_seq=stored.seq,
        traceparent=traceparent,
        deferred=deferred,
    )


async def assign(
    bus: Bus,
    request: TaskRequest,
    decision: Decision,
    reservation_id: str,
    *,
    queued_seq: int,
    traceparent: str | None,
    deferred: Reserve | None = None,
) -> None:
    """Hand a queued task to its role (again after a crash: agents run a task once, however often sent):
    to the dispatcher, which hands it over in its turn, or, without fair dispatch, to the role's agents at
    once. `queued_seq` says where its Queued event is stored; `deferred` is the hold the dispatcher makes
    before it hands the task over (only with fair dispatch)."""
    role, tenant = request.role, request.tenant
    assignment = TaskAssignment(
        request=request,
        decision=decision,
        reservation_id=reservation_id,
        queued_seq=queued_seq,
        deferred=deferred,
    )
    if is_human(role):
        # Its queue's people read it there when they claim it; nothing is dispatched to an agent.
        await bus.streams.put(topics.BUCKET_HUMAN_TASKS, request.id, codec.encode(assignment))
        return
    await bus.streams.publish(
        topics.WAITING.at(role, str(request.priority), tenant)
        if bus.settings.fair_dispatch
        else topics.TASKS.at(role, tenant),
        assignment,
        msg_id=request.id,
        traceparent=traceparent,
        headers={topics.HEADER_DEFERRED_HOLD: "1"} if deferred is not None else None,
    )
