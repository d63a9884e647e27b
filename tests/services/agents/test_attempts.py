"""Attempts: a failed one is reported as AttemptFailed and keeps what a retry needs; a stale one never runs.

The pure rules (services/agents/attempts.py) first, then the worker against a real nats-server with the
real budget service in-process.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TypedDict

import pytest
from nats.js.errors import KeyNotFoundError, NotFoundError

from maestro import codec, topics
from maestro.bus import Bus
from maestro.runtime import running_service
from maestro.settings import Settings
from proto.v1 import (
    AttemptFailed,
    Cancelled,
    Decision,
    Failed,
    Heartbeat,
    Queued,
    Retrying,
    RetryPolicy,
    Started,
    Succeeded,
    TaskAssignment,
    TaskEvent,
    TaskRequest,
    TimerFired,
    Usage,
)
from proto.v1.agents import FinishedWork
from proto.v1.tasks import FailureKind
from services.agents import attempts
from services.agents.roles import RoleResult
from services.agents.service import SERVICE as AGENTS
from services.budget.service import SERVICE as BUDGET
from tests.maestro.test_presence import eventually
from tests.services.agents.flow import assign, budget_ready, drained, events, ledger, outcome

AT = datetime(2026, 1, 1, tzinfo=UTC)


class _Task(TypedDict):
    task_id: str
    tenant: str
    at: datetime


TASK: _Task = {"task_id": "t-1", "tenant": "acme", "at": AT}
RETRY = RetryPolicy(max_attempts=3, initial_backoff_s=0)


def assignment(attempt: int = 1, retry: RetryPolicy | None = RETRY) -> TaskAssignment:
    request = TaskRequest(id="t-1", tenant="acme", role="tester", prompt="test", retry=retry)
    return TaskAssignment(request=request, decision=Decision(verdict="allow"), attempt=attempt)


# The pure rules


@pytest.mark.parametrize(
    ("last", "attempt", "stale"),
    [
        (Retrying(**TASK, attempt=2, next_at=AT), 1, True),  # a retry is on its way: this copy is old
        (Retrying(**TASK, attempt=2, next_at=AT), 2, False),  # the retry itself
        (Started(**TASK, worker="w", attempt=2), 1, True),
        (Heartbeat(**TASK, worker="w", attempt=3), 2, True),
        (Succeeded(**TASK, worker="w", attempt=2), 1, True),
        (AttemptFailed(**TASK, error="x", attempt=1), 1, True),  # reported already: never run twice
        (AttemptFailed(**TASK, error="x", attempt=1), 2, False),  # the retry came before Retrying was stored
        (Started(**TASK, worker="w", attempt=1), 1, False),  # a redelivery: the lease rules decide
        (Heartbeat(**TASK, worker="w", attempt=1), 1, False),
        (TimerFired(**TASK, timer="schedule_to_start"), 1, False),  # a timer for the whole task
        (Queued(**TASK, role="tester", decision=Decision(verdict="allow")), 1, False),
        (Cancelled(**TASK), 1, False),  # an end, which the worker judges apart
    ],
)
def test_an_attempt_the_task_moved_past_is_stale(last: TaskEvent, attempt: int, stale: bool) -> None:
    assert (attempts.moved_past(last, attempt) is not None) is stale


@pytest.mark.parametrize(
    ("last", "attempt", "early"),
    [
        (AttemptFailed(**TASK, error="x", attempt=1), 2, True),  # scheduled, its Retrying not stored yet
        (Retrying(**TASK, attempt=2, next_at=AT), 2, False),
        (AttemptFailed(**TASK, error="x", attempt=1), 1, False),  # stale, not early
        (Started(**TASK, worker="w", attempt=1), 2, False),
    ],
)
def test_a_retry_that_overtook_its_retrying_waits(last: TaskEvent, attempt: int, early: bool) -> None:
    assert attempts.undecided(last, attempt) is early


@pytest.mark.parametrize(
    ("attempt", "retry", "failure", "kept"),
    [
        (1, RETRY, "error", True),
        (2, RETRY, "crash", True),
        (1, RETRY, "timeout", True),
        (3, RETRY, "error", False),  # the last attempt the policy allows
        (1, None, "error", False),  # no policy: one attempt
        (1, RETRY, "test_failed", False),  # would fail the same way again
        (1, RETRY, "invalid_output", False),
        (1, RETRY, "cancelled", False),
        (1, RETRY, "budget", False),
    ],
)
def test_an_assignment_is_kept_only_when_a_retry_will_follow(
    attempt: int, retry: RetryPolicy | None, failure: FailureKind, kept: bool
) -> None:
    assert attempts.retried(assignment(attempt, retry), failure) is kept


def test_a_failed_role_ends_its_attempt_with_the_role_s_failure_kind() -> None:
    result = RoleResult(ok=False, output="", usage=Usage(model="m"), error="boom", failure="crash")
    event = attempts.outcome_event(assignment(2).request, result, [], "w-1", 2)
    assert isinstance(event, AttemptFailed)
    assert (event.failure, event.attempt, event.worker, event.error) == ("crash", 2, "w-1", "boom")


def test_work_stored_as_failed_by_an_older_worker_is_reported_as_a_failed_attempt() -> None:
    old = Failed(**TASK, error="boom", worker="w-0", failure="crash", usage=Usage(model="m"), attempt=1)
    new = attempts.reported(old)
    assert isinstance(new, AttemptFailed)
    assert (new.error, new.worker, new.failure, new.usage, new.attempt) == (
        "boom",
        "w-0",
        "crash",
        old.usage,
        1,
    )
    done = Succeeded(**TASK, worker="w")
    assert attempts.reported(done) is done


# The worker


@pytest.fixture
async def mesh(settings: Settings, bus: Bus) -> AsyncIterator[None]:
    """The budget service and an agent worker serving every role."""
    async with running_service(BUDGET, settings), running_service(AGENTS, settings):
        await budget_ready(bus)
        yield


def request(role: str = "planner", **fields: object) -> TaskRequest:
    return TaskRequest(tenant="acme", role=role, prompt="Plan a CLI", **fields)  # type: ignore[arg-type]


async def kept(bus: Bus, task_id: str) -> TaskAssignment | None:
    """The assignment kept for the task's retry, if any."""
    bucket = await bus.js.key_value(topics.BUCKET_ATTEMPTS)
    try:
        entry = await bucket.get(task_id)
    except KeyNotFoundError:
        return None
    return codec.decode(TaskAssignment, entry.value) if entry.value else None


async def test_a_failed_attempt_with_attempts_left_is_reported_paid_and_its_assignment_kept(
    bus: Bus, mesh: None
) -> None:
    task = request(model="a-model-nobody-serves", retry=RETRY)  # this worker fails it: `error`, retryable
    given = await assign(bus, task)
    seen = await outcome(bus, task.id)
    started, done = seen[0], seen[-1]
    assert isinstance(started, Started) and (started.attempt, started.delivery) == (1, 1)
    assert isinstance(done, AttemptFailed), done
    assert done.failure == "error" and done.attempt == 1 and done.worker == "test-worker"
    assert "does not run the model" in done.error
    assert done.usage == Usage(model="none")
    view = await ledger(bus, "acme")  # committed: the hold is settled, what it used is spent
    assert view.held_micro_usd == 0 and view.spent_micro_usd == done.cost_micro_usd
    assert await kept(bus, task.id) == given  # stored before the failure was reported
    stored = await bus.js.get_msg(topics.STREAM_EVENTS, subject=topics.EVENTS.subject("acme", task.id))
    assert stored.headers is not None
    assert stored.headers[topics.HEADER_MSG_ID] == topics.event_msg_id(task.id, "attempt-1")


@pytest.mark.parametrize(
    ("task", "attempt", "failure"),
    [
        (request(model="a-model-nobody-serves"), 1, "error"),  # no retry policy: one attempt
        (request(model="a-model-nobody-serves", retry=RETRY), 3, "error"),  # the last attempt
        (request("tester", commands=["false"], retry=RETRY), 1, "test_failed"),  # would fail again
    ],
    ids=["no-policy", "last-attempt", "non-retryable"],
)
async def test_a_failed_attempt_that_will_not_be_retried_keeps_nothing(
    bus: Bus, mesh: None, task: TaskRequest, attempt: int, failure: str
) -> None:
    await assign(bus, task, attempt=attempt)
    done = (await outcome(bus, task.id))[-1]
    assert isinstance(done, AttemptFailed), done
    assert done.failure == failure and done.attempt == attempt
    assert await kept(bus, task.id) is None
    view = await ledger(bus, "acme")
    assert view.held_micro_usd == 0 and view.spent_micro_usd == done.cost_micro_usd
    if failure == "test_failed":
        assert done.cost_micro_usd > 0  # the tokens were used, so they are paid


async def test_a_copy_of_an_attempt_the_task_moved_past_does_not_run(
    bus: Bus, mesh: None, tmp_path: Path
) -> None:
    ran = tmp_path / "ran"
    task = request("tester", commands=[f"echo run >> {ran}"], retry=RETRY)
    subject = topics.EVENTS.at(task.tenant, task.id)
    now = datetime.now(UTC)
    await bus.streams.publish(
        subject, Retrying(task_id=task.id, tenant=task.tenant, at=now, attempt=2, next_at=now)
    )

    await assign(bus, task, reserve=False)  # attempt 1, delivered late
    await drained(bus)
    assert not ran.exists()
    assert not any(isinstance(e, Started) for e in await events(bus, task.id))

    await assign(bus, task, reserve=False, attempt=2)  # the retry itself runs
    done = (await outcome(bus, task.id))[-1]
    assert isinstance(done, Succeeded) and done.attempt == 2, done
    assert ran.read_text() == "run\n"
    started = [e for e in await events(bus, task.id) if isinstance(e, Started)]
    assert [(e.attempt, e.delivery) for e in started] == [(2, 1)]


async def _queued(bus: Bus, task: TaskRequest) -> int:
    """Store the task's Queued event as the guard does; its stream sequence."""
    now = datetime.now(UTC)
    queued = Queued(
        task_id=task.id, tenant=task.tenant, at=now, role=task.role, decision=Decision(verdict="allow")
    )
    return (await bus.streams.publish(topics.EVENTS.at(task.tenant, task.id), queued)).seq


async def test_an_assignment_whose_queued_event_is_the_last_starts_right_after_it(
    bus: Bus, mesh: None
) -> None:
    task = request()
    seq = await _queued(bus, task)
    await assign(bus, task, queued_seq=seq)
    done = (await outcome(bus, task.id))[-1]
    assert isinstance(done, Succeeded) and done.attempt == 1, done
    raw = await bus.js.get_msg(topics.STREAM_EVENTS, seq=seq + 1)  # Started, stored right after Queued
    assert isinstance(codec.decode(TaskEvent, raw.data or b""), Started)  # type: ignore[arg-type]


async def test_an_assignment_whose_task_moved_on_since_it_was_queued_reads_what_happened(
    bus: Bus, mesh: None, tmp_path: Path
) -> None:
    ran = tmp_path / "ran"
    task = request("tester", commands=[f"touch {ran}"])
    seq = await _queued(bus, task)
    cancelled = Cancelled(task_id=task.id, tenant=task.tenant, at=datetime.now(UTC), by="alice")
    await bus.streams.publish(
        topics.EVENTS.at(task.tenant, task.id), cancelled, msg_id=topics.end_msg_id(task.id)
    )
    await assign(bus, task, reserve=False, queued_seq=seq)
    await drained(bus)
    assert not ran.exists()
    assert [type(e) for e in await events(bus, task.id)] == [Queued, Cancelled]


async def test_a_retry_that_comes_before_its_retrying_is_recorded_starts_only_after_it(
    bus: Bus, mesh: None
) -> None:
    task = request("planner", retry=RETRY)
    subject = topics.EVENTS.at(task.tenant, task.id)
    now = datetime.now(UTC)
    await bus.streams.publish(
        subject, AttemptFailed(task_id=task.id, tenant=task.tenant, at=now, error="x", attempt=1)
    )
    await assign(bus, task, reserve=False, attempt=2)

    async def handed_back() -> bool:
        try:
            info = await bus.js.consumer_info(topics.STREAM_TASKS, topics.agents_durable("planner"))
        except NotFoundError:
            return False  # the agents have not created their consumer yet (a busy machine)
        return (info.num_redelivered or 0) > 0  # delivered, handed back, and delivered again

    await eventually(handed_back)
    assert not any(isinstance(e, Started) for e in await events(bus, task.id))
    await bus.streams.publish(
        subject, Retrying(task_id=task.id, tenant=task.tenant, at=now, attempt=2, next_at=now)
    )
    await drained(bus)
    kinds = [type(e) for e in await events(bus, task.id)]
    assert kinds == [AttemptFailed, Retrying, Started, Succeeded]


async def test_a_redelivered_attempt_never_reports_an_earlier_attempt_s_work(
    bus: Bus, mesh: None, tmp_path: Path
) -> None:
    ran = tmp_path / "ran"
    task = request("tester", commands=[f"echo run >> {ran}"], retry=RETRY)
    subject = topics.EVENTS.at(task.tenant, task.id)
    now = datetime.now(UTC)
    # Attempt 1 failed and was reported; attempt 2 was started by a worker that died before storing work.
    first = AttemptFailed(task_id=task.id, tenant=task.tenant, at=now, error="flaky", worker="w-0", attempt=1)
    finished = await bus.js.key_value(topics.BUCKET_WORK)
    await finished.put(task.id, codec.encode(FinishedWork(outcome=first)))
    for event in (
        Started(task_id=task.id, tenant=task.tenant, at=now, worker="w-0", attempt=1),
        first,
        Retrying(task_id=task.id, tenant=task.tenant, at=now, attempt=2, next_at=now),
        Started(task_id=task.id, tenant=task.tenant, at=now, worker="w-dead", attempt=2),
    ):
        await bus.streams.publish(subject, event)

    await assign(bus, task, reserve=False, attempt=2)  # its redelivery, once the dead worker's lease ran out
    await drained(bus)
    after = (await events(bus, task.id))[4:]
    assert [type(e) for e in after] == [Started, Succeeded], after  # not attempt 1's failure again
    restarted, done = after
    assert isinstance(restarted, Started) and restarted.attempt == 2 and restarted.worker == "test-worker"
    assert isinstance(done, Succeeded) and done.attempt == 2 and done.worker == "test-worker"
    assert ran.read_text() == "run\n"
    work = codec.decode(FinishedWork, (await finished.get(task.id)).value or b"")
    assert isinstance(work.outcome, Succeeded) and work.outcome.attempt == 2
