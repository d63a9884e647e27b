"""The dispatcher's shell on a real nats-server: what it reads from the waiting stream, hands to the agents'
subjects and deletes (services/orchestrator/dispatch/dispatcher.py; its queue is tested in test_fair.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry

from maestro import codec, topics
from maestro.bus import Bus
from maestro.presence import announcing
from proto.v1 import Cancelled, DeadLetter, Decision, Started, TaskAssignment, TaskRequest, WaitingTasks
from services.orchestrator.dispatch.dispatcher import Dispatcher, DispatchMetrics
from services.orchestrator.dispatch.fair import Waiting
from services.orchestrator.dispatch.shares import Shares
from tests.maestro.test_presence import eventually


def assignment(task_id: str, tenant: str = "acme") -> TaskAssignment:
    request = TaskRequest(id=task_id, tenant=tenant, role="planner", prompt="plan")
    return TaskAssignment(request=request, decision=Decision(verdict="allow"), reservation_id=f"r-{task_id}")


async def wait_for(bus: Bus, task: TaskAssignment) -> None:
    """Queue a task as the guard does."""
    request = task.request
    subject = topics.WAITING.at(request.role, str(request.priority), request.tenant)
    await bus.streams.publish(subject, task, msg_id=request.id)


async def stored(bus: Bus, stream: str) -> int:
    return (await bus.js.stream_info(stream)).state.messages


async def _holds(bus: Bus, stream: str, count: int) -> bool:
    return await stored(bus, stream) == count


async def handed_over(bus: Bus, count: int) -> list[tuple[str, TaskAssignment]]:
    """The first `count` tasks on the agents' subjects, with the subject each is on."""
    sub = await bus.js.pull_subscribe(topics.TASKS.all, stream=topics.STREAM_TASKS)
    try:
        msgs = await sub.fetch(count, timeout=5)
        return [(m.subject, codec.decode(TaskAssignment, m.data)) for m in msgs]
    finally:
        await sub.unsubscribe()


@asynccontextmanager
async def running(dispatcher: Dispatcher, bus: Bus) -> AsyncIterator[Dispatcher]:
    """`dispatcher` running for the length of a block, stopped with the bus."""
    task = asyncio.create_task(dispatcher.run())
    try:
        yield dispatcher
    finally:
        bus.lifetime.stop()
        await asyncio.wait_for(task, 10)


def fresh_metrics() -> DispatchMetrics:
    return DispatchMetrics.create(CollectorRegistry(), time.monotonic, str)


@asynccontextmanager
async def dispatching(
    bus: Bus, *, ahead: int = 100, memory_bytes: int = 1 << 20, check_s: float = 5.0
) -> AsyncIterator[Dispatcher]:
    dispatcher = Dispatcher(
        bus, Shares(), fresh_metrics(), ahead=ahead, memory_bytes=memory_bytes, check_s=check_s
    )
    async with running(dispatcher, bus):
        async with announcing(bus, ["planner"], "w-1", slots=100):  # an agent with room, as far as it knows
            yield dispatcher


def end(dispatcher: Dispatcher, *task_ids: str) -> None:
    """Tell the dispatcher these tasks ended (as the orchestrator does when it folds their end)."""
    for task_id in task_ids:
        dispatcher.heard(Cancelled(task_id=task_id, tenant="acme", at=datetime.now(UTC)))


async def test_a_task_kept_only_by_its_place_is_read_back_handed_over_and_deleted(bus: Bus) -> None:
    tasks = [assignment(f"t-{n}") for n in range(3)]
    for task in tasks:
        await wait_for(bus, task)
    async with dispatching(bus, memory_bytes=0):  # no body kept: each is read back by its sequence
        await eventually(lambda: _holds(bus, topics.STREAM_WAITING, 0))
    assert await stored(bus, topics.STREAM_TASKS) == 3
    got = await handed_over(bus, 3)
    assert [subject for subject, _ in got] == [topics.TASKS.subject("planner", "acme")] * 3
    assert [task for _, task in got] == tasks  # byte for byte what the guard queued, in order


async def test_a_task_that_ends_while_it_waits_is_deleted_and_never_handed_over(bus: Bus) -> None:
    first, second = assignment("t-first"), assignment("t-second")
    async with dispatching(bus, ahead=1) as dispatcher:  # one handed over and not started: the other waits
        await wait_for(bus, first)
        await eventually(lambda: _holds(bus, topics.STREAM_TASKS, 1))
        await wait_for(bus, second)
        await eventually(lambda: _waits(dispatcher, second.request.id))
        end(dispatcher, "t-second")
        await eventually(lambda: _holds(bus, topics.STREAM_WAITING, 0))
    assert [task.request.id for _, task in await handed_over(bus, 2)] == ["t-first"]


async def test_a_waiting_task_on_a_subject_naming_no_priority_is_dead_lettered_and_serving_goes_on(
    bus: Bus,
) -> None:
    await bus.js.publish("maestro.v1.wait.planner.urgent.acme", codec.encode(assignment("t-bad")))
    async with dispatching(bus):
        await wait_for(bus, assignment("t-good"))
        await eventually(lambda: _holds(bus, topics.STREAM_WAITING, 0))
    assert [task.request.id for _, task in await handed_over(bus, 2)] == ["t-good"]
    sub = await bus.js.pull_subscribe(topics.DLQ.all, stream=topics.STREAM_DLQ)
    (letter,) = [codec.decode(DeadLetter, m.data) for m in await sub.fetch(1, timeout=5)]
    assert letter.subject == "maestro.v1.wait.planner.urgent.acme" and "priority 0-9" in letter.reason


async def _waits(dispatcher: Dispatcher, task_id: str) -> bool:
    return task_id in (await dispatcher.waits(WaitingTasks(task_ids=[task_id]))).reasons


async def test_no_more_is_handed_over_than_the_roles_agents_have_free_slots(bus: Bus) -> None:
    tasks = [assignment(f"t-{n}") for n in range(5)]
    async with running(Dispatcher(bus, Shares(), fresh_metrics(), ahead=100), bus) as dispatcher:
        for task in tasks:
            await wait_for(bus, task)
        await eventually(lambda: _waits(dispatcher, "t-4"))
        assert await stored(bus, topics.STREAM_TASKS) == 0  # no agent serves the role: nothing goes
        async with announcing(bus, ["planner"], "w-1", slots=2):
            await eventually(lambda: _holds(bus, topics.STREAM_TASKS, 2))
            async with announcing(bus, ["planner"], "w-2", slots=1):
                await eventually(lambda: _holds(bus, topics.STREAM_TASKS, 3))
                end(dispatcher, "t-0")
                await eventually(lambda: _holds(bus, topics.STREAM_TASKS, 4))
            # w-2 gone: two slots, three taken (t-1, t-2, t-3): one more only once two of them end
            end(dispatcher, "t-1", "t-2")
            await eventually(lambda: _holds(bus, topics.STREAM_TASKS, 5))


async def _pending(bus: Bus, role: str) -> int:
    info = await bus.js.consumer_info(topics.STREAM_WAITING, f"backlog-{role}")
    return (info.num_pending or 0) + (info.num_ack_pending or 0)  # what KEDA's nats-jetstream scaler reads


async def test_a_roles_backlog_consumer_counts_its_waiting_tasks_and_those_handed_over_leave_it(
    bus: Bus,
) -> None:
    dispatcher = Dispatcher(bus, Shares(), fresh_metrics(), ahead=100)
    running = asyncio.create_task(dispatcher.run())
    try:
        for n in range(5):
            await wait_for(bus, assignment(f"t-{n}"))
        await eventually(lambda: _waits(dispatcher, "t-4"))
        # No agent serves the role: the agents' subjects hold nothing, and the backlog is all in waiting.
        assert await stored(bus, topics.STREAM_TASKS) == 0
        assert await _pending(bus, "planner") == 5 and await _pending(bus, "tester") == 0
        async with announcing(bus, ["planner"], "w-1", slots=2):
            await eventually(lambda: _holds(bus, topics.STREAM_TASKS, 2))
            await eventually(lambda: _backlog_is(bus, "planner", 3))
    finally:
        bus.lifetime.stop()
        await asyncio.wait_for(running, 10)


async def _backlog_is(bus: Bus, role: str, count: int) -> bool:
    return await _pending(bus, role) == count


async def test_a_recount_does_not_take_back_the_slots_of_tasks_heard_ended_but_not_acked(bus: Bus) -> None:
    """Under load an agent's ack reaches the server after its outcome reached the dispatcher: the task is
    still stored on the tasks subject although it ended. The recount made while the slots are full must not
    count it as running again; it did, and the role got no task until the next recount, 5 s later."""
    tasks = [assignment(f"t-{n}") for n in range(5)]
    dispatcher = Dispatcher(bus, Shares(), fresh_metrics(), ahead=100, resync_s=0.05)
    async with running(dispatcher, bus), announcing(bus, ["planner"], "w-1", slots=2):
        for task in tasks:
            await wait_for(bus, task)
        await eventually(lambda: _holds(bus, topics.STREAM_TASKS, 2))
        end(dispatcher, "t-0", "t-1")  # their ends were heard, and their agent has not acked them yet
        await eventually(lambda: _holds(bus, topics.STREAM_TASKS, 4))
        recounts = dispatcher.recounts
        await eventually(lambda: _more_than(dispatcher, recounts))  # made while the slots are full
        end(dispatcher, "t-2")
        await eventually(lambda: _holds(bus, topics.STREAM_TASKS, 5))


async def _more_than(dispatcher: Dispatcher, recounts: int) -> bool:
    return dispatcher.recounts > recounts


def start(dispatcher: Dispatcher, task_id: str) -> None:
    """Tell the dispatcher an agent started this task (as the orchestrator does when it folds Started)."""
    dispatcher.heard(Started(task_id=task_id, tenant="acme", at=datetime.now(UTC), worker="w-1"))


async def _began_with(bus: Bus, dispatcher: Dispatcher) -> None:
    """A task queued before the dispatcher began (handed over acked, as a predecessor's may have been), seen
    handed over and deleted: from then on, tasks queued are handed over without an ack."""
    await eventually(lambda: _holds(bus, topics.STREAM_TASKS, 1))
    await eventually(lambda: _holds(bus, topics.STREAM_WAITING, 0))


async def test_a_task_handed_over_without_an_ack_keeps_its_place_in_waiting_until_it_starts(bus: Bus) -> None:
    await wait_for(bus, assignment("t-before"))
    async with dispatching(bus) as dispatcher:
        await _began_with(bus, dispatcher)
        await wait_for(bus, assignment("t-after"))
        await eventually(lambda: _holds(bus, topics.STREAM_TASKS, 2))
        assert await stored(bus, topics.STREAM_WAITING) == 1  # handed over, not heard to start: kept
        start(dispatcher, "t-after")
        await eventually(lambda: _holds(bus, topics.STREAM_WAITING, 0))
    assert [task.request.id for _, task in await handed_over(bus, 2)] == ["t-before", "t-after"]


async def test_a_hand_over_the_server_never_stored_is_handed_over_again_with_an_ack(bus: Bus) -> None:
    tasks = (await bus.js.stream_info(topics.STREAM_TASKS)).config
    await wait_for(bus, assignment("t-before"))
    async with dispatching(bus, check_s=0.3) as dispatcher:
        await _began_with(bus, dispatcher)
        # The tasks stream takes no hand-over for a while: one sent without an ack is lost, nobody says so.
        await bus.js.update_stream(dataclasses.replace(tasks, subjects=[topics.REDISPATCH.all]))
        await wait_for(bus, assignment("t-lost"))
        await eventually(lambda: _handed_over_unheard(dispatcher, "t-lost"))
        await bus.js.update_stream(tasks)
        await eventually(lambda: _holds(bus, topics.STREAM_TASKS, 2))  # handed over again, and stored now
        await eventually(lambda: _holds(bus, topics.STREAM_WAITING, 0))  # confirmed: its place goes
    assert [task.request.id for _, task in await handed_over(bus, 2)] == ["t-before", "t-lost"]


async def test_a_task_handed_over_without_an_ack_and_stored_is_not_stored_twice_when_confirmed(
    bus: Bus,
) -> None:
    await wait_for(bus, assignment("t-before"))
    async with dispatching(bus, check_s=0.3) as dispatcher:
        await _began_with(bus, dispatcher)
        await wait_for(bus, assignment("t-slow"))  # no agent starts it: it is confirmed with an ack instead
        await eventually(lambda: _holds(bus, topics.STREAM_TASKS, 2))
        await eventually(lambda: _holds(bus, topics.STREAM_WAITING, 0))
        assert await stored(bus, topics.STREAM_TASKS) == 2  # the confirmation was a duplicate, dropped
    assert [task.request.id for _, task in await handed_over(bus, 3)] == ["t-before", "t-slow"]


async def _handed_over_unheard(dispatcher: Dispatcher, task_id: str) -> bool:
    return dispatcher.unconfirmed() == [task_id]


async def test_a_task_that_ends_while_its_hand_over_is_made_ready_still_leaves_the_waiting_stream(
    bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nobody will hear a task start that ended while its body was read back for its hand-over: its place in
    the waiting stream must go then, or every task after it on its subject stays there too."""
    await wait_for(bus, assignment("t-before"))
    async with dispatching(bus, memory_bytes=0) as dispatcher:
        await _began_with(bus, dispatcher)
        read_back = dispatcher._body

        async def ending_meanwhile(task: Waiting) -> tuple[bytes, str | None] | None:
            end(dispatcher, "t-ends")  # cancelled, say, while its body is on its way back
            return await read_back(task)

        monkeypatch.setattr(dispatcher, "_body", ending_meanwhile)
        await wait_for(bus, assignment("t-ends"))
        await eventually(lambda: _holds(bus, topics.STREAM_TASKS, 2))
        await wait_for(bus, assignment("t-next"))
        await eventually(lambda: _holds(bus, topics.STREAM_TASKS, 3))
        start(dispatcher, "t-next")
        await eventually(lambda: _holds(bus, topics.STREAM_WAITING, 0))
