"""workflow_kills: diamonds and five-step chains while the orchestrator is SIGKILLed three times and the
agents once, mid-workflow.

Every step is a tester task whose command records its run in the effects file. The orchestrator dies the
moment a step's record turns succeeded, which is when it moves that step's workflow on (folds the step in,
renders the next prompts from the outputs, submits the next steps); the second half of the workflows is
published while it is down; the agents die with step commands running. Every workflow must succeed, every
step's command run once (a re-run excused only as chaos/invariants.py excuses a task's), and the ledgers
charge what the steps cost with nothing left held.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
from nats.aio.msg import Msg
from nats.js.errors import NotFoundError

from chaos import effects, streams
from chaos.drill import Plan, Stage, staged
from chaos.invariants import Report, check
from chaos.load import sampling_ledgers
from chaos.mesh import MeshError, running_mesh
from chaos.progress import reached
from chaos.workflow_facts import WorkflowFacts, check_workflows, submissions
from maestro import topics
from maestro.errors import MaestroError, NotFound
from proto.v1.workflows import (
    WORKFLOW_ENDED,
    Step,
    Workflow,
    WorkflowEnded,
    WorkflowEvents,
    WorkflowRecord,
    step_task_id,
)

NAME = "workflow_kills"
STEP_S = 0.5
"""How long each step's command sleeps before it records its run: steps are mid-run when hit."""
PER_TENANT = 2
"""Diamonds and chains of each kind per tenant and batch (two batches)."""
CHAIN = 5
ORCHESTRATOR_AT = (0.1, 0.5, 0.8)
"""The share of all steps succeeded at each orchestrator kill (the second batch is published after the
first kill)."""
AGENTS_AT = 0.3
AGENTS_BUSY = 2
"""Step commands the agents must be running when they are killed."""
PLAN = Plan(
    tenants=("acme", "globex"),
    sleep_s=STEP_S,
    refused_every=0,
    # Half the chaos default: work a killed process held comes back sooner, and the scenario stays short.
    env={"MAESTRO_ACK_WAIT_S": "5"},
    converge_s=30.0,
)
ENDED_WITHIN_S = 60.0
"""How long the workflows get to end after the last fault."""
_POLL_S = 0.25
_KV_PREFIX = f"$KV.{topics.BUCKET_TASKS}."
_SUCCEEDED = b'"state":"succeeded"'
_workflow_events = msgspec.json.Decoder(WorkflowEvents)


def _step(workflow_id: str, name: str, prompt: str, needs: list[str], effects_file: Path) -> Step:
    command = effects.command(step_task_id(workflow_id, name), effects_file, sleep_s=STEP_S)
    return Step(name=name, role="tester", prompt=prompt, needs=needs, commands=[command])  # type: ignore[arg-type]


def diamond(workflow_id: str, tenant: str, effects_file: Path) -> Workflow:
    """a, then b and c (each reading a), then d joining both."""
    steps = [
        _step(workflow_id, "a", "Run the check", [], effects_file),
        _step(workflow_id, "b", "Check what a said: {{ steps.a.output }}", ["a"], effects_file),
        _step(workflow_id, "c", "Check a again ({{ steps.a.state }})", ["a"], effects_file),
        _step(
            workflow_id, "d", "Join b={{ steps.b.state }} c={{ steps.c.output }}", ["b", "c"], effects_file
        ),
    ]
    return Workflow(id=workflow_id, tenant=tenant, steps=steps)


def chain(workflow_id: str, tenant: str, effects_file: Path) -> Workflow:
    """s0 .. s4, each reading the one before."""
    steps = [
        _step(
            workflow_id,
            f"s{i}",
            f"Step {i} after: {{{{ steps.s{i - 1}.output }}}}" if i else "Step 0",
            [f"s{i - 1}"] if i else [],
            effects_file,
        )
        for i in range(CHAIN)
    ]
    return Workflow(id=workflow_id, tenant=tenant, steps=steps)


def batches(tenants: Sequence[str], effects_file: Path) -> tuple[list[Workflow], list[Workflow]]:
    """Two batches, each with PER_TENANT diamonds and chains per tenant."""
    stamp = f"{time.time_ns() // 1_000_000:x}"

    def batch(n: int) -> list[Workflow]:
        return [
            make(f"wk{stamp}-{kind}{n}{i}-{tenant}", tenant, effects_file)
            for tenant in tenants
            for i in range(PER_TENANT)
            for kind, make in (("d", diamond), ("c", chain))
        ]

    return batch(1), batch(2)


@dataclass
class Progress:
    """Steps whose task record turned succeeded, as the task bucket's writes show them (a core
    subscription, so the harness sees the moment the orchestrator stores it)."""

    steps: set[str]
    succeeded: set[str] = field(default_factory=set)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def on_record(self, msg: Msg) -> None:
        """A write to the task bucket."""
        task_id = msg.subject[len(_KV_PREFIX) :]
        if task_id in self.steps and _SUCCEEDED in msg.data and task_id not in self.succeeded:
            self.succeeded.add(task_id)
            self.changed.set()

    async def reach(self, share: float, within: float = 45.0) -> bool:
        """Wait until `share` of the steps succeeded; whether they did within `within` seconds."""
        target = share * len(self.steps)
        return await reached(self.changed, lambda: len(self.succeeded) >= target, within)


@dataclass
class Run:
    """The scenario's state while it runs: the stage, the workflows and what the faults saw."""

    stage: Stage
    progress: Progress
    facts: WorkflowFacts = field(default_factory=WorkflowFacts)

    async def publish(self, workflows: Sequence[Workflow]) -> None:
        """Publish each workflow; an acknowledged one's steps become the tasks the invariants judge."""
        for workflow in workflows:
            try:
                await self.stage.client.run_workflow(workflow)
            except MaestroError as exc:
                self.stage.violations.append(f"workflow {workflow.id} was not acknowledged: {exc}")
                continue
            self.facts.workflows[workflow.id] = workflow
            self.stage.load.facts.submissions += submissions(workflow)

    async def running(self) -> int:
        """Acknowledged workflows that have not ended (no record yet counts as running)."""
        ended = 0
        for workflow_id in self.facts.workflows:
            try:
                ended += (await self.stage.client.workflow(workflow_id)).state in WORKFLOW_ENDED
            except NotFound:
                pass
        return len(self.facts.workflows) - ended

    async def kill_orchestrator(self, share: float, while_down: Sequence[Workflow] = ()) -> None:
        """SIGKILL the orchestrator once `share` of the steps succeeded (publishing `while_down` before it
        is back)."""
        if not await self.progress.reach(share):
            self.stage.notes.append(
                f"{share:.0%} of the steps never succeeded; killed the orchestrator anyway"
            )
        kills = self.stage.mesh.kill("orchestrator")
        running = await self.running()
        self.stage.notes.append(
            f"orchestrator killed at {len(self.progress.succeeded)} steps succeeded, "
            f"{running} of {len(self.facts.workflows)} workflows running"
        )
        if not running:
            self.stage.violations.append(
                "the orchestrator was killed after every workflow ended: proved nothing"
            )
        await self.publish(while_down)
        await self.stage.mesh.back(kills)

    async def kill_agents(self, share: float) -> None:
        """SIGKILL the agents once `share` of the steps succeeded and they run step commands."""
        await self.progress.reach(share)
        if not await self.stage.mesh.busy("agents", AGENTS_BUSY):
            self.stage.notes.append(
                f"the agents never ran {AGENTS_BUSY} step commands at once; killed anyway"
            )
        kills = self.stage.mesh.kill("agents")
        running = await self.running()
        self.stage.notes.append(
            f"agents killed at {len(self.progress.succeeded)} steps succeeded, "
            f"{running} of {len(self.facts.workflows)} workflows running"
        )
        await self.stage.mesh.back(kills)

    async def faults(self, first: Sequence[Workflow], second: Sequence[Workflow]) -> None:
        """Publish the first batch, then kill: orchestrator (publishing the second batch while it is down),
        agents, orchestrator, orchestrator."""
        await self.publish(first)
        await self.kill_orchestrator(ORCHESTRATOR_AT[0], while_down=second)
        await self.kill_agents(AGENTS_AT)
        for share in ORCHESTRATOR_AT[1:]:
            await self.kill_orchestrator(share)

    async def ended(self, within: float) -> dict[str, WorkflowRecord]:
        """Every workflow's record once all have ended, or as they are after `within` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        found: dict[str, WorkflowRecord] = {}
        while True:
            for workflow_id in self.facts.workflows:
                try:
                    found[workflow_id] = await self.stage.client.workflow(workflow_id)
                except NotFound:
                    pass
            left = [i for i in self.facts.workflows if i not in found or found[i].state not in WORKFLOW_ENDED]
            if not left or loop.time() > deadline:
                return found
            await asyncio.sleep(_POLL_S)

    async def collect(self) -> None:
        """The workflows' records, their ended events and the workflow consumer's backlog."""
        self.facts.records = await self.ended(within=1.0)
        js = self.stage.client.bus.js
        for stored in await streams.read_all(js, topics.STREAM_EVENTS, topics.WORKFLOW_EVENTS.all):
            event = _workflow_events.decode(stored.data)
            if isinstance(event, WorkflowEnded):
                self.facts.ended.setdefault(event.workflow_id, []).append(event)
        try:
            info = await js.consumer_info(topics.STREAM_WORKFLOWS, topics.DURABLE_ORCHESTRATOR_WORKFLOWS)
        except NotFoundError:
            self.facts.backlog = "the consumer is gone"
            return
        if info.num_pending or info.num_ack_pending:
            self.facts.backlog = f"{info.num_pending} pending, {info.num_ack_pending} unacknowledged"


async def run_workflow_kills(workdir: Path) -> Report:
    """workflow_kills: 16 workflows (8 diamonds, 8 chains of 5; 72 tester steps) over two tenants, the
    orchestrator SIGKILLed three times and the agents once while they run."""
    started = time.monotonic()
    async with AsyncExitStack() as stack:
        mesh = await stack.enter_async_context(running_mesh(workdir, PLAN.env))
        stage = await stack.enter_async_context(staged(mesh, workdir, PLAN))
        first, second = batches(PLAN.tenants, stage.load.effects_file)
        steps = {t.task_id for w in (*first, *second) for t in submissions(w)}
        progress = Progress(steps)
        bus = stage.client.bus
        sub = await bus.nc.subscribe(f"{_KV_PREFIX}>", cb=progress.on_record, pending_msgs_limit=-1)
        await bus.nc.flush()
        run = Run(stage, progress)
        try:
            async with sampling_ledgers(stage.client, PLAN.tenants, stage.load.facts):
                try:
                    await run.faults(first, second)
                except MeshError as exc:
                    stage.violations.append(f"fault: {exc}")
                faulted = time.monotonic()
                await run.ended(within=ENDED_WITHIN_S)
                stage.notes.append(
                    f"faults over at {faulted - started:.0f}s, every workflow ended "
                    f"{time.monotonic() - faulted:.0f}s later"
                )
        finally:
            await sub.unsubscribe()
        await stage.load.settle(PLAN.tenants, within=PLAN.converge_s)
        await run.collect()
    stage.load.facts.kills = list(stage.mesh.kills)
    workflows = check_workflows(run.facts, stage.load.facts)
    diamonds = sum(1 for w in run.facts.workflows.values() if len(w.steps) == 4)
    notes = [
        *stage.notes,
        f"{len(run.facts.workflows)} workflows ({diamonds} diamonds, "
        f"{len(run.facts.workflows) - diamonds} chains of {CHAIN}), {len(steps)} steps",
    ]
    return check(
        NAME,
        stage.load.facts,
        time.monotonic() - started,
        violations=[*stage.violations, *workflows],
        notes=notes,
    )
