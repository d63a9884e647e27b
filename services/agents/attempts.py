"""An attempt as its worker sees it: the event it ends with, whether a retry needs its assignment, and
whether a delivered copy of it is stale (the task has moved past it) or early (its retry is not recorded)."""

from __future__ import annotations

from datetime import UTC, datetime

from msgspec import structs

from proto.v1 import (
    ArtifactRef,
    AttemptFailed,
    Claimed,
    ContextFile,
    Escalated,
    Failed,
    HandedOff,
    Heartbeat,
    Released,
    Retrying,
    Started,
    Succeeded,
    TaskAssignment,
    TaskEvent,
    TaskRequest,
    TimerFired,
)
from proto.v1.ids import HUMAN_PREFIX
from proto.v1.tasks import HANDS_OFF, NON_RETRYABLE, FailureKind
from services.agents.roles import RoleResult

OUTPUT_LIMIT = 64 * 1024
"""Most characters of output (or error) an outcome event carries; the rest is cut."""


def bounded(text: str, limit: int = OUTPUT_LIMIT) -> str:
    """`text` cut to `limit` characters, saying how much was cut."""
    if len(text) <= limit:
        return text
    note = f"\n[... cut: {len(text)} characters in all]"
    return text[: limit - len(note)] + note


def outcome_event(
    request: TaskRequest, result: RoleResult, artifacts: list[ArtifactRef], worker: str, attempt: int
) -> Succeeded | AttemptFailed:
    """The event that ends an attempt: what the role produced and what it used (its cost is filled in once
    the budget has charged it). A failure ends the attempt only; the orchestrator decides what follows."""
    now = datetime.now(UTC)
    if result.ok:
        return Succeeded(
            task_id=request.id,
            tenant=request.tenant,
            at=now,
            worker=worker,
            output=bounded(result.output),
            usage=result.usage,
            artifacts=artifacts,
            attempt=attempt,
        )
    return AttemptFailed(
        task_id=request.id,
        tenant=request.tenant,
        at=now,
        error=bounded(result.error or "failed"),
        worker=worker,
        failure=result.failure,
        usage=result.usage,
        attempt=attempt,
    )


def reported(outcome: Succeeded | Failed | AttemptFailed) -> Succeeded | AttemptFailed:
    """The event stored work is reported as: a Failed (stored by a worker from before attempts were
    reported) is a failed attempt too, which the orchestrator turns into the task's end."""
    if not isinstance(outcome, Failed):
        return outcome
    return AttemptFailed(
        task_id=outcome.task_id,
        tenant=outcome.tenant,
        at=outcome.at,
        error=outcome.error,
        worker=outcome.worker,
        failure=outcome.failure,
        usage=outcome.usage,
        cost_micro_usd=outcome.cost_micro_usd,
        attempt=outcome.attempt,
    )


def handed_off(assignment: TaskAssignment, outcome: Succeeded | AttemptFailed) -> HandedOff | None:
    """What the attempt ends with instead of its failure when its task hands off to a human queue: it
    failed in a way a person can judge (HANDS_OFF) and will not be retried. None otherwise."""
    request = assignment.request
    if (
        request.hand_off is None
        or not isinstance(outcome, AttemptFailed)
        or outcome.failure not in HANDS_OFF
        or retried(assignment, outcome.failure)
    ):
        return None
    first = outcome.error.splitlines()[0] if outcome.error else "failed"
    return HandedOff(
        task_id=request.id,
        tenant=request.tenant,
        at=outcome.at,
        worker=outcome.worker,
        queue=request.hand_off.queue,
        reason=bounded(f"the {request.role} could not proceed ({outcome.failure}): {first}", 1024),
        human=request.hand_off.work,
        usage=outcome.usage,
        cost_micro_usd=outcome.cost_micro_usd,
        attempt=outcome.attempt,
    )


def for_people(assignment: TaskAssignment, handed: HandedOff, error: str) -> TaskAssignment:
    """The task as the people of its hand-off queue read it: the agent's instructions, why it stopped, and
    what it said (its error) among the inputs."""
    request = assignment.request
    prompt = (
        f"The {request.role} agent could not proceed and handed this task to you.\n\n"
        f"Why: {handed.reason}\n\nWhat it was asked:\n{request.prompt}"
    )
    return structs.replace(
        assignment,
        request=structs.replace(
            request,
            role=f"{HUMAN_PREFIX}{handed.queue}",
            prompt=prompt,
            context=[*request.context, ContextFile(path="handed-off/agent-error.txt", content=error)],
            commands=[],
            model=None,
            expand=False,
            retry=None,
            timeouts=None,
            hand_off=None,
            human=handed.human,
        ),
    )


def retried(assignment: TaskAssignment, failure: FailureKind) -> bool:
    """Whether the task runs again after this attempt failed so (its assignment must then be kept): the
    failure would not just repeat, and the request's retry policy allows another attempt."""
    policy = assignment.request.retry
    return policy is not None and failure not in NON_RETRYABLE and assignment.attempt < policy.max_attempts


def moved_past(last: TaskEvent, attempt: int) -> str | None:
    """Why a delivered `attempt` must not run, given the task's last event: the task is at a later attempt,
    or this attempt already failed and was reported. None when it may go on."""
    match last:
        case AttemptFailed(attempt=n) if n == attempt:
            return f"attempt {n} already failed"
        case HandedOff() | Claimed() | Released() | Escalated():
            return "the task was handed to a person"
        case (
            Started(attempt=n)
            | Heartbeat(attempt=n)
            | Succeeded(attempt=n)
            | Failed(attempt=n)
            | AttemptFailed(attempt=n)
            | Retrying(attempt=n)
            | TimerFired(attempt=n)
        ) if n > attempt:
            return f"the task is at attempt {n} ({last.__struct_config__.tag})"
    return None


def undecided(last: TaskEvent, attempt: int) -> bool:
    """Whether `attempt` came before the orchestrator recorded its Retrying: it schedules the attempt just
    before it records it, so with no back-off the attempt can overtake it. Started must follow Retrying (the
    record moves to the next attempt only then), so such an attempt waits."""
    return isinstance(last, AttemptFailed) and last.attempt < attempt
