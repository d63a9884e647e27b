"""A task runs once, whatever happens around it: a budget outage after the work, a copy sent again later.

Executions are counted as real side effects: each tester command appends a line to a file outside the
workspace.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import nats.errors
import pytest

from maestro import topics
from maestro.bus import Bus
from maestro.deliveries import Delivery
from maestro.errors import Retry
from maestro.runtime import running_service
from maestro.settings import Settings
from proto.v1 import Decision, Started, Succeeded, TaskAssignment, TaskRequest
from services.agents.service import SERVICE as AGENTS
from services.agents.service import open_worker, store_durably
from services.budget.service import SERVICE as BUDGET
from tests.services.agents.flow import assign, budget_ready, drained, events, first_event, ledger, outcome


def counted(task_id: str, runs: Path) -> TaskRequest:
    return TaskRequest(
        id=task_id, tenant="acme", role="tester", prompt="count", commands=[f"echo {task_id} >> {runs}"]
    )


def executions(runs: Path) -> int:
    return len(runs.read_text().splitlines()) if runs.exists() else 0


async def test_a_budget_outage_after_the_work_retries_the_commit_never_the_work(
    bus: Bus, settings: Settings, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    task = counted("outage-1", runs)
    async with running_service(BUDGET, settings):
        await budget_ready(bus)
        await assign(bus, task)  # its hold is reserved; then the budget goes away
    async with running_service(AGENTS, settings):
        # The work is done while no budget can be reached: the commit fails and is retried, alone.
        async with asyncio.timeout(10):
            while executions(runs) == 0:  # noqa: ASYNC110 - the side effect is a file, not an event
                await asyncio.sleep(0.02)
        retried = await bus.js.consumer_info(topics.STREAM_TASKS, topics.agents_durable("tester"))
        async with running_service(BUDGET, settings):
            done = (await outcome(bus, task.id, within=20))[-1]
            view = await ledger(bus, "acme")
    assert isinstance(done, Succeeded), done
    assert executions(runs) == 1
    assert retried.num_ack_pending == 1  # the task was still being retried when the budget came back
    assert view.spent_micro_usd == done.cost_micro_usd > 0 and view.held_micro_usd == 0


async def test_a_finished_task_sent_again_is_not_run_again(
    bus: Bus, settings: Settings, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    task = counted("again-1", runs)
    async with running_service(BUDGET, settings), running_service(AGENTS, settings):
        await budget_ready(bus)
        assignment = await assign(bus, task)
        first = (await outcome(bus, task.id))[-1]
        # The same task, past any duplicate window (no dedup id): it ended, so it is acked and not run.
        await bus.streams.publish(topics.TASKS.at("tester", "acme"), assignment)
        await drained(bus)
        view = await ledger(bus, "acme")
    assert isinstance(first, Succeeded)
    assert executions(runs) == 1
    assert sum(isinstance(e, Succeeded) for e in await events(bus, task.id)) == 1
    assert view.spent_micro_usd == first.cost_micro_usd


async def test_two_copies_of_one_task_delivered_together_run_it_once(
    bus: Bus, settings: Settings, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    task = counted("twin-1", runs)
    async with running_service(BUDGET, settings):
        await budget_ready(bus)
        assignment = await assign(bus, task)
        await bus.streams.publish(topics.TASKS.at("tester", "acme"), assignment)  # a second copy, no dedup id
        async with running_service(AGENTS, settings), running_service(AGENTS, settings.with_(worker="w-2")):
            done = (await outcome(bus, task.id, within=20))[-1]
            await drained(bus)
    assert isinstance(done, Succeeded)
    assert executions(runs) == 1


async def test_a_copy_arriving_while_the_task_runs_waits_for_it_instead_of_running_beside_it(
    bus: Bus, settings: Settings, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    task = TaskRequest(
        id="beside-1", tenant="acme", role="tester", prompt="count", commands=[f"sleep 1; echo x >> {runs}"]
    )
    async with running_service(BUDGET, settings):
        await budget_ready(bus)
        async with running_service(AGENTS, settings), running_service(AGENTS, settings.with_(worker="w-2")):
            assignment = await assign(bus, task)
            await first_event(bus, task.id, Started)
            await bus.streams.publish(topics.TASKS.at("tester", "acme"), assignment)  # a second copy, mid-run
            done = (await outcome(bus, task.id, within=20))[-1]
            await drained(bus)
    assert isinstance(done, Succeeded)
    assert executions(runs) == 1
    assert sum(isinstance(e, Started) for e in await events(bus, task.id)) == 1


async def test_storing_finished_work_is_retried_while_nats_cannot_take_it() -> None:
    calls: list[int] = []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise nats.errors.TimeoutError
        return "stored"

    assert await store_durably("work", flaky) == "stored"
    assert len(calls) == 3


async def test_a_delivery_of_a_task_this_worker_is_running_waits(bus: Bus, settings: Settings) -> None:
    worker = await open_worker(bus)
    task = counted("held-1", Path("/dev/null"))
    worker.running.add(task.id)
    delivery = Delivery(
        subject=topics.TASKS.subject("tester", "acme"), headers={}, attempt=2, stream_seq=1, size=0, _msg=None
    )  # type: ignore[arg-type]
    with pytest.raises(Retry, match="this worker is running the task"):
        await worker.handle(TaskAssignment(request=task, decision=Decision(verdict="allow")), delivery)
