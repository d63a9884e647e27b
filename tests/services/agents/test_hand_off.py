"""When an agent's task goes to people instead of failing (pure): only a failure a person can judge, only
once no retry is left, and what the people read of it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from proto.v1 import AttemptFailed, Decision, RetryPolicy, Succeeded, TaskAssignment, TaskRequest
from proto.v1.humans import HandOff
from proto.v1.tasks import NON_RETRYABLE, FailureKind
from services.agents.attempts import for_people, handed_off

AT = datetime(2026, 12, 3, tzinfo=UTC)


def _assignment(retry: RetryPolicy | None = None, attempt: int = 1) -> TaskAssignment:
    request = TaskRequest(
        id="t-1",
        tenant="acme",
        role="tester",
        prompt="Run the suite",
        commands=["pytest -q"],
        hand_off=HandOff(queue="qa"),
        retry=retry,
    )
    return TaskAssignment(request=request, decision=Decision(verdict="allow"), attempt=attempt)


def _failed(failure: FailureKind, attempt: int = 1) -> AttemptFailed:
    return AttemptFailed(
        task_id="t-1",
        tenant="acme",
        at=AT,
        error="2 tests failed\nmore",
        worker="w",
        failure=failure,
        attempt=attempt,
    )


@pytest.mark.parametrize("failure", ["test_failed", "invalid_output", "error", "crash", "model_refused"])
def test_a_failure_a_person_can_judge_goes_to_the_queue_once_no_retry_is_left(failure: FailureKind) -> None:
    handed = handed_off(_assignment(), _failed(failure))
    assert handed is not None and handed.queue == "qa" and handed.worker == "w"
    assert handed.reason == f"the tester could not proceed ({failure}): 2 tests failed"
    # With attempts left, a failure that may pass next time is retried first; one sure to repeat is not.
    retrying = _assignment(RetryPolicy(max_attempts=2))
    assert (handed_off(retrying, _failed(failure)) is None) == (failure not in NON_RETRYABLE)
    last = _assignment(RetryPolicy(max_attempts=2), attempt=2)
    assert handed_off(last, _failed(failure, attempt=2)) is not None


@pytest.mark.parametrize("failure", ["cancelled", "timeout", "lost", "policy", "budget"])
def test_what_a_person_cannot_undo_is_not_handed_off(failure: FailureKind) -> None:
    assert handed_off(_assignment(), _failed(failure)) is None


def test_a_success_or_a_task_without_a_hand_off_is_not_handed_off() -> None:
    done = Succeeded(task_id="t-1", tenant="acme", at=AT, worker="w")
    assert handed_off(_assignment(), done) is None
    plain = TaskAssignment(
        request=TaskRequest(id="t-1", tenant="acme", role="tester", prompt="p"),
        decision=Decision(verdict="allow"),
    )
    assert handed_off(plain, _failed("test_failed")) is None


def test_the_people_read_the_instructions_why_it_stopped_and_what_the_agent_said() -> None:
    assignment = _assignment()
    handed = handed_off(assignment, _failed("test_failed"))
    assert handed is not None
    request = for_people(assignment, handed, "2 tests failed\nmore").request
    assert request.role == "human:qa" and request.commands == [] and request.hand_off is None
    assert (
        "Why: the tester could not proceed (test_failed)" in request.prompt
        and "Run the suite" in request.prompt
    )
    assert [(f.path, f.content) for f in request.context] == [
        ("handed-off/agent-error.txt", "2 tests failed\nmore")
    ]
