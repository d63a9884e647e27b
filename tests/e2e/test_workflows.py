"""Workflows end to end on a real nats-server: a diamond, a chain of the six roles, failure, cancel, pause."""

from __future__ import annotations

import asyncio
import itertools
from contextlib import AsyncExitStack
from datetime import UTC, datetime

import pytest

from maestro import codec, topics
from maestro.bus import Bus
from maestro.client import Client, open_client
from maestro.errors import NotFound, RemoteError
from maestro.policy import bundle_store
from maestro.settings import Settings
from proto.v1 import Accepted, AttemptFailed, TaskRecord
from proto.v1.workflows import (
    Need,
    Step,
    Workflow,
    WorkflowEnded,
    WorkflowPaused,
    WorkflowRecord,
    WorkflowResumed,
    step_task_id,
)
from services.orchestrator.workflows.runner import Pause, Runner
from tests.e2e.conftest import open_mesh
from tests.maestro.test_presence import eventually


def step(
    name: str, role: str = "implementer", prompt: str = "", needs: list[str | Need] | None = None
) -> Step:
    return Step(name=name, role=role, prompt=prompt or f"Do {name}", needs=needs or [])  # type: ignore[arg-type]


async def tasks_of(client: Client, record: WorkflowRecord) -> dict[str, TaskRecord]:
    out = {}
    for s in record.steps:
        try:
            out[s.name] = await client.get(s.task_id)
        except NotFound:
            pass
    return out


async def test_a_diamond_runs_every_step_once_and_the_join_sees_both_branches(mesh: Client) -> None:
    workflow = Workflow(
        id="wf-diamond",
        tenant="acme",
        steps=[
            step("a", "planner", "Plan a CLI that counts words"),
            step("b", "implementer", "Implement: {{ steps.a.output }}", ["a"]),
            step("c", "doc-writer", "Document: {{ steps.a.output }}", ["a"]),
            step("d", "reviewer", "Review B={{ steps.b.state }} C={{ steps.c.state }}", ["b", "c"]),
        ],
    )
    assert await mesh.run_workflow(workflow) == "wf-diamond"
    assert await mesh.run_workflow(workflow) == "wf-diamond"  # the same workflow again is the same one

    record = await mesh.wait_workflow("wf-diamond", timeout=60)

    assert record.state == "succeeded", record
    assert [s.state for s in record.steps] == ["succeeded"] * 4
    tasks = await tasks_of(mesh, record)
    assert all(t.parent == "wf-diamond" and t.labels["workflow"] == "wf-diamond" for t in tasks.values())
    # What each step was handed, as the guard saw it: the needs' outputs in its prompt and its context.
    (b,) = [e for e in await mesh.events(step_task_id("wf-diamond", "b")) if isinstance(e, Accepted)]
    assert b.prompt_chars > len("Implement: ") + len(tasks["a"].output) - 1 and b.context_files == 1
    (d,) = [e for e in await mesh.events(step_task_id("wf-diamond", "d")) if isinstance(e, Accepted)]
    assert d.context_files == 2 and d.prompt_chars == len("Review B=succeeded C=succeeded")
    assert record.cost_micro_usd == sum(t.cost_micro_usd for t in tasks.values())
    b_started = tasks["b"].started_at
    assert (
        b_started is not None and tasks["a"].finished_at is not None and b_started >= tasks["a"].finished_at
    )


async def test_a_chain_of_the_six_roles_runs_in_order(mesh: Client) -> None:
    roles = ["planner", "scaffolder", "implementer", "tester", "reviewer", "doc-writer"]
    steps = [step(r.replace("-", "_"), r, f"{r}: a word counter") for r in roles]

    workflow_id = await mesh.chain("acme", steps, workflow_id="wf-chain")
    record = await mesh.wait_workflow(workflow_id, timeout=90)

    assert record.state == "succeeded", record
    tasks = await tasks_of(mesh, record)
    ordered = [tasks[s.name] for s in record.steps]
    for earlier, later in itertools.pairwise(ordered):
        assert earlier.finished_at is not None and later.started_at is not None
        assert later.started_at >= earlier.finished_at


async def test_a_step_the_guard_rejects_fails_the_workflow_and_skips_what_needed_it(mesh: Client) -> None:
    workflow = Workflow(
        id="wf-denied",
        tenant="acme",
        steps=[
            Step(name="wipe", role="implementer", prompt="Clean up", commands=["rm -rf /"]),
            step("after", needs=["wipe"]),
            step(
                "tolerant", needs=[Need(step="wipe", on_failure="continue")], prompt="{{ steps.wipe.state }}"
            ),
        ],
    )
    await mesh.run_workflow(workflow)

    record = await mesh.wait_workflow("wf-denied", timeout=60)

    assert (record.state, record.reason) == ("failed", "step wipe rejected")
    states = {s.name: s.state for s in record.steps}
    assert states["wipe"] == "rejected" and states["after"] == "skipped"


async def test_cancelling_a_workflow_cancels_its_running_steps_and_ends_it(mesh: Client) -> None:
    workflow = Workflow(
        id="wf-cancel",
        tenant="acme",
        steps=[
            Step(name="slow", role="tester", prompt="Run the suite", commands=["sleep 30"]),
            step("after", "reviewer", needs=["slow"]),
        ],
    )
    await mesh.run_workflow(workflow)
    slow = step_task_id("wf-cancel", "slow")

    async def running() -> bool:
        try:
            return (await mesh.get(slow)).state == "running"
        except NotFound:
            return False

    await eventually(running, within=30)

    asked = datetime.now(UTC)
    await mesh.cancel_workflow("wf-cancel", by="alice", reason="wrong branch")

    record = await mesh.wait_workflow("wf-cancel", timeout=30)

    # The running step heard of it and stopped its command within 2 s of the request (by the events' times).
    async def stop_reported() -> bool:
        return any(isinstance(e, AttemptFailed) for e in await mesh.events(slow))

    await eventually(stop_reported)  # the worker pays for what the stopped attempt used, then reports it
    (stopped,) = [e for e in await mesh.events(slow) if isinstance(e, AttemptFailed)]
    assert stopped.failure == "cancelled" and (stopped.at - asked).total_seconds() < 2
    assert (record.state, record.cancelled_by) == ("cancelled", "alice")
    assert {s.name: s.state for s in record.steps} == {"slow": "cancelled", "after": "skipped"}
    with pytest.raises(RemoteError) as ended:
        await mesh.pause_workflow("wf-cancel")
    assert ended.value.code == 400


async def started_slow_pair(mesh: Client, workflow_id: str) -> None:
    """Run a workflow whose `first` step takes a second and whose `second` needs it; return once it exists."""
    workflow = Workflow(
        id=workflow_id,
        tenant="acme",
        steps=[
            Step(name="first", role="tester", prompt="Wait a little", commands=["sleep 1"]),
            step("second", "reviewer", needs=["first"]),
        ],
    )
    await mesh.run_workflow(workflow)

    async def exists() -> bool:
        try:
            await mesh.workflow(workflow_id)
            return True
        except NotFound:
            return False

    await eventually(exists)


async def held_after_first(mesh: Client, workflow_id: str) -> WorkflowRecord:
    """The record once `first` has succeeded: the write that records it is the one that would have submitted
    `second`."""

    async def first_ended() -> bool:
        return (await mesh.workflow(workflow_id)).step("first").state == "succeeded"

    await eventually(first_ended, within=30)
    return await mesh.workflow(workflow_id)


async def test_a_paused_workflow_starts_no_new_step_until_resumed(mesh: Client, bus: Bus) -> None:
    await started_slow_pair(mesh, "wf-pause")
    paused = await mesh.pause_workflow("wf-pause", by="bob", reason="freeze for the release")
    assert paused.state == "paused"

    record = await held_after_first(mesh, "wf-pause")
    assert record.state == "paused" and record.step("second").state == "waiting"

    await mesh.resume_workflow("wf-pause", by="bob", reason="released")
    assert (await mesh.wait_workflow("wf-pause", timeout=30)).state == "succeeded"
    # Who paused and resumed it, and why, are in the workflow's events (its audit trail).
    events = bus.js.subscribe(topics.WORKFLOW_EVENTS.subject("acme", "wf-pause"), ordered_consumer=True)
    said: list[tuple[str, str, str]] = []
    async with asyncio.timeout(10):
        subscription = await events
        async for message in subscription.messages:
            match codec.decode(topics.WORKFLOW_EVENTS.type, message.data):
                case WorkflowPaused(by=by, reason=reason):
                    said.append(("paused", by, reason))
                case WorkflowResumed(by=by, reason=reason):
                    said.append(("resumed", by, reason))
                case WorkflowEnded():
                    break
    assert said == [("paused", "bob", "freeze for the release"), ("resumed", "bob", "released")]


async def test_a_workflow_another_replica_changed_is_moved_on_from_what_that_replica_wrote(
    mesh: Client, bus: Bus
) -> None:
    await started_slow_pair(mesh, "wf-replicas")
    # Another orchestrator replica pauses it: the one that started it wrote it last before that.
    other = Runner(bus)
    assert (await other.change("wf-replicas", Pause("alice", "hold on"))).state == "paused"

    record = await held_after_first(mesh, "wf-replicas")
    assert record.state == "paused" and record.step("second").state == "waiting"


async def test_an_unknown_workflow_is_not_found(mesh: Client) -> None:
    with pytest.raises(NotFound):
        await mesh.workflow("wf-none")
    with pytest.raises(NotFound):
        await mesh.cancel_workflow("wf-none")


async def test_a_planner_fans_out_into_subtasks_each_judged_by_the_guard(mesh: Client) -> None:
    workflow = Workflow(
        id="wf-fanout",
        tenant="acme",
        steps=[
            Step(name="plan", role="planner", prompt="Build a word counter\n$ rm -rf /", expand=True),
            step("review", "reviewer", "Review what was built", ["plan"]),
        ],
    )
    await mesh.run_workflow(workflow)

    record = await mesh.wait_workflow("wf-fanout", timeout=90)

    states = {s.name: s.state for s in record.steps}
    # Six steps of the plan in a chain, and a seventh that runs the command the prompt gave: the guard
    # denies that one, which fails the workflow (review needed every last subtask) and skips review.
    assert [n for n in states if n.startswith("plan_")] == [f"plan_{n}" for n in range(1, 8)]
    assert states["plan_7"] == "rejected" and states["review"] == "skipped"
    denied = await mesh.get(step_task_id("wf-fanout", "plan_7"))
    assert denied.verdict == "deny" and any(v.startswith("commands.") for v in denied.violations)
    assert (record.state, record.reason) == ("failed", "step plan_7 rejected")


async def test_a_plan_the_guard_allows_runs_before_the_steps_that_needed_the_planner(mesh: Client) -> None:
    workflow = Workflow(
        id="wf-fanout-ok",
        tenant="acme",
        steps=[
            Step(name="plan", role="planner", prompt="Build a word counter", expand=True),
            step("review", "reviewer", "Review what was built", ["plan"]),
        ],
    )
    await mesh.run_workflow(workflow)

    record = await mesh.wait_workflow("wf-fanout-ok", timeout=120)

    assert record.state == "succeeded" and len(record.steps) == 2 + 6
    tasks = await tasks_of(mesh, record)
    last = tasks["plan_6"].finished_at
    assert last is not None and tasks["review"].started_at is not None and tasks["review"].started_at >= last


SMALL_PLANS = b"""\
version: small-plans
default:
  max_plan_subtasks: 3
"""


async def test_the_tenants_bundle_bounds_how_many_subtasks_a_plan_may_add(settings: Settings) -> None:
    async with AsyncExitStack() as stack:
        client = await stack.enter_async_context(open_client(settings))
        await bundle_store.push(client.bus.js, SMALL_PLANS)
        mesh = await open_mesh(settings, stack)
        workflow = Workflow(
            id="wf-bounded",
            tenant="acme",
            steps=[Step(name="plan", role="planner", prompt="Build a word counter", expand=True)],
        )
        await mesh.run_workflow(workflow)

        record = await mesh.wait_workflow("wf-bounded", timeout=60)

    assert record.state == "failed" and len(record.steps) == 1  # nothing of the plan joined
    plan = record.step("plan")
    assert plan.state == "failed" and "the plan has 6 subtasks; at most 3 are run" in plan.error
