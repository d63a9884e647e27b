"""The workflow runner writes a record before it acts on it: what a runner that died in between left undone
is done by the next one that reads the record (a restarted replica, or another), once. On a real nats-server
with the budget running (the escrow)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from maestro import codec, topics
from maestro.bus import Bus
from maestro.runtime import running_service
from maestro.settings import Settings
from proto.v1 import TaskRequest
from proto.v1.workflows import Step, Workflow, WorkflowEnded
from services.budget.service import SERVICE as BUDGET
from services.orchestrator.workflows.runner import Runner
from services.orchestrator.workflows.store import WorkflowStore
from tests.e2e.conftest import open_client, wait_for_budget


class Died(Exception):
    """A runner killed between two lines."""


@pytest.fixture
async def budget(settings: Settings) -> AsyncIterator[None]:
    async with running_service(BUDGET, settings), open_client(settings) as client:
        await wait_for_budget(client)
        yield


def pair(workflow_id: str, **kwargs: object) -> Workflow:
    return Workflow(
        id=workflow_id,
        tenant="acme",
        steps=[
            Step(name="first", role="tester", prompt="Check it"),
            Step(name="second", role="reviewer", prompt="Review it", needs=["first"]),  # type: ignore[list-item]
        ],
        **kwargs,  # type: ignore[arg-type]
    )


def dying_runner(bus: Bus, where: str) -> Runner:
    """A runner whose `where` (a method) dies when called."""
    runner = Runner(bus)

    async def die(*_: object, **__: object) -> None:
        raise Died(where)

    setattr(runner, where, die)
    return runner


async def stored(bus: Bus, stream: str, subject: str) -> list[bytes]:
    """Every message stored on `subject`, oldest first."""
    sub = await bus.js.subscribe(subject, stream=stream, ordered_consumer=True)
    out = []
    try:
        while True:
            try:
                out.append((await sub.next_msg(timeout=0.5)).data)
            except TimeoutError:
                return out
    finally:
        await sub.unsubscribe()


async def requests_of(bus: Bus, tenant: str) -> list[str]:
    """The ids of the requests waiting for the guard (a work queue: no consumer may read it beside it)."""
    info = await bus.js.stream_info(topics.STREAM_REQUESTS)
    ids = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1) if info.state.messages else ():
        raw = await bus.js.get_msg(topics.STREAM_REQUESTS, seq)
        if raw.subject == topics.REQUESTS.subject(tenant):
            ids.append(codec.decode(TaskRequest, raw.data or b"").id)
    return ids


async def ended_events(bus: Bus, workflow: Workflow) -> list[WorkflowEnded]:
    subject = topics.WORKFLOW_EVENTS.subject(workflow.tenant, workflow.id)
    events = [
        codec.decode(topics.WORKFLOW_EVENTS.type, d) for d in await stored(bus, topics.STREAM_EVENTS, subject)
    ]
    return [e for e in events if isinstance(e, WorkflowEnded)]


async def test_a_start_that_died_after_its_write_has_its_first_step_submitted_by_the_next_start(
    bus: Bus, budget: None
) -> None:
    workflow = pair("wf-died-start")
    with pytest.raises(Died):
        await dying_runner(bus, "_submit").start(workflow)
    found = await WorkflowStore(bus).get(workflow.id)
    assert found is not None and found[0].step("first").state == "pending"
    assert await requests_of(bus, "acme") == []

    # The workflow's message comes again (nobody acked it): another runner reads the record and submits.
    record = await Runner(bus).start(workflow)
    assert record.step("first").state == "pending"
    assert await requests_of(bus, "acme") == [record.step("first").task_id]


async def test_a_workflow_that_ended_without_its_end_announced_is_announced_once_by_the_next_reader(
    bus: Bus, budget: None
) -> None:
    # Its escrow does not fit its ceiling: it ends at its start, in the same write.
    workflow = pair("wf-died-end", max_cost_micro_usd=1)
    with pytest.raises(Died):
        await dying_runner(bus, "_release").start(workflow)
    found = await WorkflowStore(bus).get(workflow.id)
    assert found is not None and found[0].state == "failed"
    assert await ended_events(bus, workflow) == []

    for _ in range(2):  # the next reader announces it; the one after finds it announced
        assert (await Runner(bus).start(workflow)).state == "failed"
    (ended,) = await ended_events(bus, workflow)
    assert ended.state == "failed"
