"""A running task stopped by a Cancelled or TimedOut event: its commands die within 2 s, and it still pays."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from maestro import codec, topics
from maestro.bus import Bus
from maestro.runtime import open_bus, running_service
from maestro.settings import Settings
from proto.v1 import AttemptFailed, Cancelled, Started, Succeeded, TaskRequest, TimedOut, Usage
from proto.v1.agents import FinishedWork
from proto.v1.tasks import FailureKind
from services.agents.service import Worker, consumer, open_worker
from services.agents.stop import stop_error
from services.budget.service import SERVICE as BUDGET
from tests.maestro.test_presence import eventually
from tests.services.agents.flow import assign, budget_ready, first_event, ledger

STOP_WITHIN_S = 2.0

Stop = Callable[[TaskRequest], Cancelled | TimedOut]


@pytest.fixture
async def agent(settings: Settings) -> AsyncIterator[Worker]:
    """The budget service and a tester worker on a connection of its own; its metrics are read after."""
    async with running_service(BUDGET, settings), open_bus(settings, "agents-under-test") as own:
        await budget_ready(own)
        worker = await open_worker(own)
        consuming = asyncio.create_task(own.consumers.consume(consumer("tester"), worker.handle))
        try:
            yield worker
        finally:
            own.lifetime.stop()
            await asyncio.wait_for(consuming, 10)


def _gone(pid: int) -> bool:
    # A killed grandchild is reparented, and a zombie still answers kill(pid, 0) until someone reaps it.
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (FileNotFoundError, IndexError):
        return True


def _counted(worker: Worker, outcome: str) -> float | None:
    registry = worker.bus.metrics.registry
    return registry.get_sample_value("maestro_agent_tasks_total", {"role": "tester", "outcome": outcome})


async def _pids(path: Path) -> list[int]:
    """The pids the command wrote to `path` (the shell's, which is its group's, then its child's)."""

    async def written() -> bool:
        return path.exists()  # written whole: the command moves it into place

    await eventually(written)
    return [int(word) for word in path.read_text().split()]


def _long_task(pids: Path, until: str = "sleep 60") -> TaskRequest:
    # `$!` is the backgrounded child: both it and the shell must die, not just the shell.
    command = f"{until} & echo $$ $! > {pids}.tmp && mv {pids}.tmp {pids}; wait"
    return TaskRequest(tenant="acme", role="tester", prompt="Run the slow suite", commands=[command])


def _cancelled(task: TaskRequest) -> Cancelled:
    at = datetime.now(UTC)
    return Cancelled(task_id=task.id, tenant=task.tenant, at=at, by="alice", reason="changed my mind")


def _timed_out(task: TaskRequest) -> TimedOut:
    at = datetime.now(UTC)
    return TimedOut(task_id=task.id, tenant=task.tenant, at=at, timer="start_to_close", reason="ran 60s")


async def _stop(bus: Bus, stop: Cancelled | TimedOut) -> None:
    """Record the stop and tell the workers, as the orchestrator does for a running task."""
    await bus.streams.publish(
        topics.EVENTS.at(stop.tenant, stop.task_id), stop, msg_id=topics.end_msg_id(stop.task_id)
    )
    await bus.streams.notify(topics.STOP_NOTICES.at(stop.tenant, stop.task_id), stop)


@pytest.mark.parametrize(
    ("stop", "error", "failure"),
    [
        (_cancelled, "stopped: cancelled by alice: changed my mind", "cancelled"),
        (_timed_out, "stopped: timed out (start_to_close): ran 60s", "timeout"),
    ],
)
async def test_a_stopped_task_dies_within_two_seconds_and_still_pays(
    bus: Bus, agent: Worker, tmp_path: Path, stop: Stop, error: str, failure: FailureKind
) -> None:
    task = _long_task(tmp_path / "pids")
    await assign(bus, task)
    started = await first_event(bus, task.id, Started, Succeeded, AttemptFailed)
    assert isinstance(started, Started), started
    pids = await _pids(tmp_path / "pids")
    assert not any(_gone(pid) for pid in pids)

    loop = asyncio.get_running_loop()
    published = loop.time()
    await _stop(bus, stop(task))

    async def dead() -> bool:
        return all(_gone(pid) for pid in pids)

    await eventually(dead, within=STOP_WITHIN_S)
    assert loop.time() - published < STOP_WITHIN_S

    done = await first_event(bus, task.id, Succeeded, AttemptFailed)
    assert isinstance(done, AttemptFailed) and done.error == error, done
    assert done.failure == failure and done.worker == "test-worker" and done.attempt == 1
    assert done.usage is not None and done.usage.input_tokens == done.usage.output_tokens == 0
    kept = await agent.finished.get(task.id)  # stored like any work, before it was paid for
    assert kept.value is not None
    work = codec.decode(FinishedWork, kept.value)
    assert isinstance(work.outcome, AttemptFailed) and work.outcome.error == error
    # Settled by the agent's commit (nothing else runs here to release it); it used no tokens, so 0 spent.
    view = await ledger(bus, "acme")
    assert view.held_micro_usd == 0 and view.holds == 0
    assert view.spent_micro_usd == done.cost_micro_usd

    async def counted() -> bool:  # just after the outcome is published
        return _counted(agent, "stopped") == 1

    await eventually(counted, within=5)
    assert _counted(agent, "failed") is None


async def test_a_stop_for_another_task_leaves_this_one_running(
    bus: Bus, agent: Worker, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    task = _long_task(tmp_path / "pids", until=f"until test -e {go}; do sleep 0.02; done")
    other = TaskRequest(tenant="acme", role="tester", prompt="Another task")
    await assign(bus, task)
    await first_event(bus, task.id, Started)
    pids = await _pids(tmp_path / "pids")

    for stop in (_cancelled(other), _timed_out(other)):
        await _stop(bus, stop)
    assert not any(_gone(pid) for pid in pids)
    go.touch()  # only now may the command end, and the task succeed

    done = await first_event(bus, task.id, Succeeded, AttemptFailed)
    assert isinstance(done, Succeeded), done
    assert "1 of 1 commands passed" in done.output
    assert (await ledger(bus, "acme")).held_micro_usd == 0


async def test_work_a_stopped_task_left_unpaid_is_paid_and_reported_by_the_next_delivery(
    bus: Bus, agent: Worker, tmp_path: Path
) -> None:
    ran = tmp_path / "ran"
    task = TaskRequest(tenant="acme", role="tester", prompt="Run it", commands=[f"touch {ran}"])
    subject = topics.EVENTS.at(task.tenant, task.id)
    # As a worker leaves it that stored the work of a stopped task and died before paying for it.
    await bus.streams.publish(
        subject, Started(task_id=task.id, tenant=task.tenant, at=datetime.now(UTC), worker="w-0")
    )
    stop = _cancelled(task)
    await bus.streams.publish(subject, stop, msg_id=topics.end_msg_id(task.id))
    error = stop_error(stop)
    left = AttemptFailed(
        task_id=task.id,
        tenant=task.tenant,
        at=stop.at,
        error=error,
        worker="w-0",
        failure="cancelled",
        usage=Usage(model="none"),
    )
    await agent.finished.put(task.id, codec.encode(FinishedWork(outcome=left)))

    await assign(bus, task)
    done = await first_event(bus, task.id, Succeeded, AttemptFailed)
    assert isinstance(done, AttemptFailed) and done.worker == "w-0" and done.error == error, done
    assert done.failure == "cancelled" and done.attempt == 1
    assert not ran.exists()  # paid for and reported, never run again
    view = await ledger(bus, "acme")
    assert view.held_micro_usd == 0 and view.holds == 0
