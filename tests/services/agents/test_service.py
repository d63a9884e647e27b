"""The agent worker against a real nats-server, with the real budget service running in-process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from maestro import codec, topics
from maestro.bus import Bus
from maestro.runtime import running_service
from maestro.settings import Settings
from proto.v1 import (
    AttemptFailed,
    ContextFile,
    DeadLetter,
    Decision,
    Heartbeat,
    Reserve,
    Started,
    Succeeded,
    TaskAssignment,
    TaskRequest,
)
from services.agents.attempts import bounded
from services.agents.service import SERVICE as AGENTS
from services.agents.service import consumer, open_worker
from services.budget.service import SERVICE as BUDGET
from tests.services.agents.flow import assign, budget_ready, events, ledger, outcome


@pytest.fixture
async def mesh(settings: Settings, bus: Bus) -> AsyncIterator[None]:
    """The budget service and an agent worker serving every role."""
    async with running_service(BUDGET, settings), running_service(AGENTS, settings.with_(heartbeat_s=0.3)):
        await budget_ready(bus)
        yield


def request(role: str, prompt: str = "Plan a CLI that counts words", **fields: object) -> TaskRequest:
    return TaskRequest(tenant="acme", role=role, prompt=prompt, **fields)  # type: ignore[arg-type]


async def test_a_task_starts_succeeds_and_is_paid_for_once(bus: Bus, mesh: None) -> None:
    task = request("planner")
    await assign(bus, task)
    seen = await outcome(bus, task.id)
    started, done = seen[0], seen[-1]
    assert isinstance(started, Started) and started.worker == "test-worker"
    assert started.attempt == 1 and started.delivery == 1
    assert isinstance(done, Succeeded)
    assert done.output.startswith("1. ") and "\n2. " in done.output
    assert done.usage is not None and done.usage.model == "offline" and done.usage.output_tokens > 0
    assert done.cost_micro_usd > 0
    view = await ledger(bus, "acme")
    assert view.spent_micro_usd == done.cost_micro_usd
    assert view.held_micro_usd == 0


@pytest.mark.parametrize("role", ["scaffolder", "implementer", "doc-writer"])
async def test_produced_files_are_readable_from_the_object_store(bus: Bus, mesh: None, role: str) -> None:
    task = request(role, "Word counter")
    await assign(bus, task)
    done = (await outcome(bus, task.id))[-1]
    assert isinstance(done, Succeeded), done
    assert done.artifacts
    store = await bus.js.object_store(topics.STORE_ARTIFACTS)
    for ref in done.artifacts:
        assert ref.name.startswith(f"acme/{task.id}/")
        stored = await store.get(ref.name)
        assert stored.data is not None and len(stored.data) == ref.size > 0
        assert stored.info.digest == ref.digest


async def test_every_role_succeeds(bus: Bus, mesh: None) -> None:
    tasks = [
        request("planner"),
        request("scaffolder"),
        request("implementer"),
        request("tester", commands=["test -f a.txt"], context=[ContextFile(path="a.txt")]),
        request("reviewer", context=[ContextFile(path="a.py", content="x = 1\n")]),
        request("doc-writer"),
    ]
    for task in tasks:
        await assign(bus, task)
    results = await asyncio.gather(*(outcome(bus, t.id) for t in tasks))
    assert [type(seen[-1]).__name__ for seen in results] == ["Succeeded"] * len(tasks)


async def test_a_failing_command_fails_the_attempt_and_still_releases_the_hold(bus: Bus, mesh: None) -> None:
    task = request("tester", commands=["exit 4"])
    await assign(bus, task)
    done = (await outcome(bus, task.id))[-1]
    assert isinstance(done, AttemptFailed) and done.failure == "test_failed" and done.attempt == 1
    assert "$ exit 4 -> exit 4" in done.error
    view = await ledger(bus, "acme")
    assert view.held_micro_usd == 0
    assert view.spent_micro_usd == done.cost_micro_usd > 0  # the tokens were used, so they are paid


async def test_a_long_task_heartbeats(bus: Bus, mesh: None) -> None:
    task = request("tester", commands=["sleep 1"])
    await assign(bus, task)
    seen = await outcome(bus, task.id)
    assert isinstance(seen[-1], Succeeded)
    assert any(isinstance(e, Heartbeat) and e.worker == "test-worker" for e in seen)


async def test_a_task_without_a_reservation_runs_without_a_commit(bus: Bus, mesh: None) -> None:
    task = request("planner")
    await assign(bus, task, reserve=False)
    done = (await outcome(bus, task.id))[-1]
    assert isinstance(done, Succeeded) and done.cost_micro_usd == 0
    assert (await ledger(bus, "acme")).spent_micro_usd == 0


async def test_a_task_delivered_twice_succeeds_once_and_is_charged_once(bus: Bus, mesh: None) -> None:
    task = request("planner")
    assignment = await assign(bus, task)
    await bus.streams.publish(topics.TASKS.at("planner", "acme"), assignment)  # as if the guard had resent it
    first = (await outcome(bus, task.id))[-1]
    assert isinstance(first, Succeeded)

    async with asyncio.timeout(10):
        while True:  # both copies are gone from the work queue once each was handled and acked
            if not (await bus.js.stream_info(topics.STREAM_TASKS)).state.messages:
                break
            await asyncio.sleep(0.05)
    stored = await events(bus, task.id)
    assert sum(isinstance(e, Succeeded) for e in stored) == 1
    assert (await ledger(bus, "acme")).spent_micro_usd == first.cost_micro_usd


async def test_an_undecodable_task_goes_to_the_dlq_and_serving_goes_on(bus: Bus, mesh: None) -> None:
    await bus.nc.publish(topics.TASKS.subject("planner", "acme"), b"not a task")
    await bus.js.publish(topics.TASKS.subject("planner", "acme"), b"{}")
    task = request("planner")
    await assign(bus, task)
    assert isinstance((await outcome(bus, task.id))[-1], Succeeded)
    sub = await bus.js.pull_subscribe(topics.DLQ.subject("agents"), stream=topics.STREAM_DLQ)
    letters = [codec.decode(DeadLetter, m.data) for m in await sub.fetch(1, timeout=5)]
    assert letters[0].origin == "agents" and letters[0].reason.startswith("undecodable")


def test_output_is_bounded() -> None:
    assert bounded("x" * 10, 100) == "x" * 10
    cut = bounded("x" * 1000, 100)
    assert len(cut) == 100 and cut.endswith("\n[... cut: 1000 characters in all]")


async def test_tasks_are_counted_and_timed_by_role_and_outcome(bus: Bus, settings: Settings) -> None:
    worker = await open_worker(bus)
    consuming = asyncio.create_task(bus.consumers.consume(consumer("planner"), worker.handle))
    try:
        async with running_service(BUDGET, settings):
            await budget_ready(bus)
            task = request("planner")
            await assign(bus, task)
            await outcome(bus, task.id)
    finally:
        bus.lifetime.stop()
        await asyncio.wait_for(consuming, 10)
    registry = bus.metrics.registry
    assert (
        registry.get_sample_value("maestro_agent_tasks_total", {"role": "planner", "outcome": "succeeded"})
        == 1
    )
    assert registry.get_sample_value("maestro_agent_task_seconds_count", {"role": "planner"}) == 1


async def test_a_dead_lettered_task_is_a_failed_attempt_with_the_reason_and_its_hold_is_released(
    bus: Bus, settings: Settings
) -> None:
    worker = await open_worker(bus)
    async with running_service(BUDGET, settings):
        await budget_ready(bus)
        task = request("planner")
        reservation = await bus.calls.request(
            topics.BUDGET_RESERVE, Reserve(tenant="acme", task_id=task.id, estimate_micro_usd=1000)
        )
        assignment = TaskAssignment(
            request=task, decision=Decision(verdict="allow"), reservation_id=reservation.reservation_id
        )
        assert (await ledger(bus, "acme")).held_micro_usd == 1000
        await worker.dead_letter(
            codec.encode(assignment), "failed 5 times, last: boom", "maestro.v1.task.planner.acme"
        )
        await worker.dead_letter(
            b"not even json", "undecodable", "maestro.v1.task.planner.acme"
        )  # nothing to fail
        done = (await outcome(bus, task.id))[-1]
        # An attempt's failure, for the orchestrator to retry or fail the task: never its kind of event.
        assert isinstance(done, AttemptFailed) and done.error == "failed 5 times, last: boom"
        assert (done.failure, done.attempt) == ("crash", 1)
        view = await ledger(bus, "acme")
        assert view.held_micro_usd == 0 and view.spent_micro_usd == 0
