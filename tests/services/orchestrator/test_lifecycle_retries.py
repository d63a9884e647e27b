"""Retries decided by the state machine, no server: back-off, attempts, failures that end at once, cost."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from msgspec import structs

from maestro.lifecycle import Applied, Record, Redispatch, Refused, backoff_s, step
from proto.v1 import AttemptFailed, Failed, Retrying, RetryPolicy, Started, TaskRecord, Usage
from proto.v1.tasks import NON_RETRYABLE
from tests.services.orchestrator.test_lifecycle import ID, at, record, succeeded

POLICY = RetryPolicy(max_attempts=3, initial_backoff_s=2, multiplier=3, max_backoff_s=60, jitter=0.25)


def running(attempt: int = 1, policy: RetryPolicy | None = POLICY, cost: int = 0) -> TaskRecord:
    return structs.replace(
        record("running", attempts=attempt),
        retry=policy,
        model="m-1",
        estimate_micro_usd=900,
        reservation_id="r-t-1",
        cost_micro_usd=cost,
        started_at=at(3),
    )


def attempt_failed(attempt: int = 1, failure: str = "error", cost: int = 40) -> AttemptFailed:
    return AttemptFailed(
        task_id=ID,
        tenant="acme",
        at=at(10),
        error="exit 1",
        worker="w-1",
        failure=failure,  # type: ignore[arg-type]
        usage=Usage(model="m-1", input_tokens=3),
        cost_micro_usd=cost,
        attempt=attempt,
    )


def applied(current: TaskRecord, event: object, seq: int = 11) -> Applied:
    result = step(current, event, seq)  # type: ignore[arg-type]
    assert isinstance(result, Applied), result
    return result


def test_a_failed_attempt_with_attempts_left_is_handed_out_again_after_its_backoff() -> None:
    result = applied(running(), attempt_failed())
    assert result.record.state == "running" and result.record.cost_micro_usd == 40  # paid, not decided yet
    (retry,) = result.commands
    assert isinstance(retry, Redispatch)
    assert (retry.attempt, retry.role, retry.model, retry.estimate_micro_usd) == (
        2,
        "implementer",
        "m-1",
        900,
    )
    assert retry.due == at(10) + timedelta(seconds=backoff_s(POLICY, ID, 1))
    assert retry.error == "exit 1"


def test_the_last_attempt_fails_the_task_saying_how_many_were_tried() -> None:
    result = applied(running(attempt=3, cost=80), attempt_failed(attempt=3))
    assert result.record.cost_micro_usd == 120
    (end,) = result.commands
    assert isinstance(end, Record) and end.msg_id == f"{ID}.end"
    assert isinstance(end.event, Failed) and "after 3 attempts" in end.event.error
    assert end.event.attempt == 3 and end.event.cost_micro_usd == 0  # the attempts' cost is in the record


@pytest.mark.parametrize("failure", sorted(NON_RETRYABLE))
def test_a_failure_that_would_fail_again_ends_the_task_at_once(failure: str) -> None:
    (end,) = applied(running(), attempt_failed(failure=failure)).commands
    assert isinstance(end, Record) and isinstance(end.event, Failed) and end.event.failure == failure


def test_without_a_policy_one_failure_ends_the_task() -> None:
    (end,) = applied(running(policy=None), attempt_failed()).commands
    assert isinstance(end, Record) and end.event.error == "exit 1"  # type: ignore[union-attr]


def test_a_failure_of_an_attempt_the_task_moved_past_is_paid_and_decides_nothing() -> None:
    result = applied(running(attempt=2, cost=5), attempt_failed(attempt=1))
    assert result.commands == () and result.record.cost_micro_usd == 45


def test_retrying_queues_the_task_until_the_next_attempt_starts() -> None:
    after = at(12)
    event = Retrying(task_id=ID, tenant="acme", at=at(10), attempt=2, next_at=after, reservation_id="r-t-1.2")
    waiting = applied(running(), event).record
    assert (waiting.state, waiting.next_retry_at, waiting.reservation_id) == ("queued", after, "r-t-1.2")
    again = applied(
        waiting, Started(task_id=ID, tenant="acme", at=at(13), worker="w-2", attempt=2), 12
    ).record
    assert (again.state, again.attempts, again.deliveries, again.next_retry_at) == ("running", 2, 1, None)
    assert again.started_at == waiting.started_at  # when the task first started


def test_a_retry_for_another_attempt_than_the_next_is_refused() -> None:
    event = Retrying(task_id=ID, tenant="acme", at=at(10), attempt=3, next_at=at(12))
    assert isinstance(step(running(), event, 11), Refused)


def test_success_after_retries_costs_every_attempt() -> None:
    assert applied(running(attempt=2, cost=40), succeeded()).record.cost_micro_usd == 40 + 330


def test_a_worker_handed_the_same_attempt_again_is_a_new_delivery() -> None:
    again = applied(
        running(), Started(task_id=ID, tenant="acme", at=at(4), worker="w-2", attempt=1, delivery=2)
    )
    assert (again.record.attempts, again.record.deliveries, again.record.worker) == (1, 2, "w-2")


policies = st.builds(
    RetryPolicy,
    max_attempts=st.integers(1, 20),
    initial_backoff_s=st.floats(0, 1000),
    multiplier=st.floats(1, 10),
    max_backoff_s=st.floats(0, 10_000),
    jitter=st.floats(0, 1),
)


@given(policies, st.text(min_size=1, max_size=20), st.integers(1, 19))
def test_backoff_is_capped_jittered_within_bounds_and_the_same_when_decided_again(
    policy: RetryPolicy, task_id: str, attempt: int
) -> None:
    delay = backoff_s(policy, task_id, attempt)
    base = min(policy.initial_backoff_s * policy.multiplier ** (attempt - 1), policy.max_backoff_s)
    assert base * (1 - policy.jitter) - 1e-9 <= delay <= base * (1 + policy.jitter) + 1e-9
    assert delay == backoff_s(policy, task_id, attempt)


def test_backoff_grows_by_the_multiplier_until_the_cap() -> None:
    steady = structs.replace(POLICY, jitter=0.0)
    assert [backoff_s(steady, ID, n) for n in (1, 2, 3, 4, 5)] == [2, 6, 18, 54, 60]
