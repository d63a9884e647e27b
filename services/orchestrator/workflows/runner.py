"""Run workflows: start one, move it on when a step's task ends, pause, resume, cancel (dag.py's I/O).

Every change is folded into the workflow's record by compare-and-set, one workflow at a time per process.
What the record then calls for (steps to submit, to cancel, events) is done before the record is written:
a crash in between is repaired by deciding again, since a step's request is claimed and published under its
task id and content (the same request twice is one task), a cancel is one per task, and an event has a
message id.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from msgspec import structs

from maestro import claims, codec, topics
from maestro.bus import Bus
from maestro.cancel import AlreadyEnded, cancel
from maestro.claims import IdConflict
from maestro.client import publish_request
from maestro.errors import MaestroError, NotFound, Retry
from proto.v1 import TERMINAL_STATES, TaskRecord, TaskRequest
from proto.v1.workflows import (
    STEP_NAME_PATTERN,
    WORKFLOW_ENDED,
    Step,
    Workflow,
    WorkflowControl,
    WorkflowEnded,
    WorkflowEvents,
    WorkflowPaused,
    WorkflowRecord,
    WorkflowResumed,
    WorkflowStarted,
    references,
)
from services.orchestrator.batches import KeyedBatches, Outcome
from services.orchestrator.store import Conflict, TaskStore
from services.orchestrator.workflows import dag
from services.orchestrator.workflows.store import WorkflowStore
from services.orchestrator.workflows.template import context_of, render

log = logging.getLogger(__name__)

_CAS_ATTEMPTS = 5


class Ended(MaestroError):
    """The workflow has ended: it can no longer be paused, resumed or cancelled."""


_STEP_NAME = re.compile(STEP_NAME_PATTERN)


def step_of(task: TaskRecord) -> str | None:
    """The step a task may be of: its id is `<parent>-<step name>` (labels may be withheld, so they are not
    relied on); the workflow then checks the task is its step's."""
    if not task.parent or not task.id.startswith(f"{task.parent}-"):
        return None
    name = task.id[len(task.parent) + 1 :]
    return name if _STEP_NAME.match(name) else None


@dataclass(frozen=True)
class StepChanged:
    """A step's task was created or ended."""

    task: TaskRecord


@dataclass(frozen=True)
class Pause:
    by: str


@dataclass(frozen=True)
class Resume:
    by: str


@dataclass(frozen=True)
class Cancel:
    by: str
    reason: str = ""


Change = StepChanged | Pause | Resume | Cancel


class Runner:
    """Workflows on a bus: the orchestrator's service, its API and the SDK all drive them through this."""

    def __init__(self, bus: Bus, tasks: TaskStore | None = None) -> None:
        self.bus = bus
        self.store = WorkflowStore(bus)
        self.tasks = tasks or TaskStore(bus)
        self._batches: KeyedBatches[Change] = KeyedBatches(self._process)

    # -- starting ------------------------------------------------------------------------------------
    async def start(self, workflow: Workflow) -> WorkflowRecord:
        """Start `workflow`, or find it started already with the same definition.

        Raises IdConflict when its id belongs to another tenant's workflow or another definition.
        """
        fingerprint = claims.digest(workflow)
        found = await self.store.get(workflow.id)
        if found is not None:
            return _same(found[0], workflow, fingerprint)
        now = datetime.now(UTC)
        record, ended = await self._settle(dag.created(workflow, fingerprint, now), {}, now)
        submitted = [s.name for s in record.steps if s.state != "waiting"]
        started = WorkflowStarted(workflow_id=workflow.id, tenant=workflow.tenant, at=now, steps=submitted)
        await self._publish(started, "started")
        if ended:
            await self._publish(_ended(record, now), "ended")
        try:
            await self.store.put(record, None)
        except Conflict:
            found = await self.store.get(workflow.id)
            if found is None:
                raise Retry(0.5, f"workflow {workflow.id} cannot be read yet") from None
            return _same(found[0], workflow, fingerprint)
        log.info("workflow started", extra={"tenant": workflow.tenant, "workflow_id": workflow.id})
        return record

    # -- changing ------------------------------------------------------------------------------------
    async def step_changed(self, task: TaskRecord) -> None:
        """Fold a step's task (created or ended) into its workflow, and move the workflow on."""
        if task.parent is not None:
            await self._batches.submit(task.parent, StepChanged(task))

    async def change(self, workflow_id: str, change: Pause | Resume | Cancel) -> WorkflowRecord:
        """Pause, resume or cancel a workflow; returns its record after the change.

        Raises NotFound for an unknown workflow and Ended when it has ended.
        """
        await self._batches.submit(workflow_id, change)
        found = await self.store.get(workflow_id)
        if found is None:  # pragma: no cover - _process raised NotFound already
            raise NotFound(f"no workflow {workflow_id}")
        return found[0]

    async def control(self, order: WorkflowControl) -> WorkflowRecord:
        """Carry out a pause, resume or cancel order for its tenant's workflow.

        Raises NotFound when the tenant has no such workflow and Ended when it has ended.
        """
        found = await self.store.get(order.workflow_id)
        if found is None or found[0].tenant != order.tenant:
            raise NotFound(f"no workflow {order.workflow_id} for tenant {order.tenant}")
        by = order.by or "api"
        change: Pause | Resume | Cancel
        match order.action:
            case "pause":
                change = Pause(by)
            case "resume":
                change = Resume(by)
            case _:
                change = Cancel(by, order.reason)
        return await self.change(order.workflow_id, change)

    async def _process(self, workflow_id: str, changes: list[Change]) -> list[Outcome]:
        for _ in range(_CAS_ATTEMPTS):
            found = await self.store.get(workflow_id)
            if found is None:
                missing = NotFound(f"no workflow {workflow_id}")
                return [None if isinstance(c, StepChanged) else missing for c in changes]
            record, revision = found
            outcomes, events, known, changed = self._fold(record, changes)
            now = datetime.now(UTC)
            ended_before = record.state in WORKFLOW_ENDED
            record, ended = await self._settle(changed, known, now)
            await self._cancel_new(record, known)
            if ended and not ended_before:
                events.append((_ended(record, now), "ended"))
            for event, slot in events:
                await self._publish(event, slot)
            if record == found[0]:
                return outcomes
            try:
                await self.store.put(record, revision)
            except Conflict:
                continue
            return outcomes
        return [Retry(0.1, f"workflow {workflow_id} kept changing") for _ in changes]

    def _fold(
        self, record: WorkflowRecord, changes: Sequence[Change]
    ) -> tuple[list[Outcome], list[tuple[WorkflowEvents, str]], dict[str, TaskRecord], WorkflowRecord]:
        outcomes: list[Outcome] = []
        events: list[tuple[WorkflowEvents, str]] = []
        known: dict[str, TaskRecord] = {}
        now = datetime.now(UTC)
        for change in changes:
            outcome: Outcome = None
            match change:
                case StepChanged(task=task):
                    name = step_of(task)
                    ours = any(s.name == name and s.task_id == task.id for s in record.steps)
                    if ours and name is not None and task.tenant == record.tenant:
                        known[name] = task
                        if task.state in TERMINAL_STATES:
                            record = dag.step_ended(record, task)
                case _ if record.state in WORKFLOW_ENDED or record.ending is not None:
                    outcome = Ended(f"workflow {record.id} has {record.ending or record.state}")
                case Pause(by=by) if record.state == "running":
                    record = structs.replace(record, state="paused", updated_at=now)
                    paused = WorkflowPaused(workflow_id=record.id, tenant=record.tenant, at=now, by=by)
                    events.append((paused, f"paused-{now:%s%f}"))
                case Resume(by=by) if record.state == "paused":
                    record = structs.replace(record, state="running", updated_at=now)
                    resumed = WorkflowResumed(workflow_id=record.id, tenant=record.tenant, at=now, by=by)
                    events.append((resumed, f"resumed-{now:%s%f}"))
                case Cancel(by=by, reason=reason):
                    why = reason or f"cancelled by {by}"
                    record = structs.replace(record, ending="cancelled", reason=why, cancelled_by=by)
            outcomes.append(outcome)
        return outcomes, events, known, record

    # -- doing -----------------------------------------------------------------------------------------
    async def _settle(
        self, record: WorkflowRecord, known: Mapping[str, TaskRecord], now: datetime
    ) -> tuple[WorkflowRecord, bool]:
        """Decide and do until nothing more follows: submit ready steps (a refused one is rejected and
        decided on again), cancel what the record says to."""
        for _ in range(len(record.steps) + 1):
            progress = dag.progress(record, now)
            record = progress.record
            refused = await self._submit(record, progress.submit, known)
            await self._cancel(record, progress.cancel, known)
            if not refused:
                return record, progress.ended
            record = structs.replace(
                record,
                steps=[
                    structs.replace(s, state="rejected", error=refused[s.name]) if s.name in refused else s
                    for s in record.steps
                ],
            )
        return record, record.state in WORKFLOW_ENDED  # pragma: no cover - each pass ends a step

    async def _submit(
        self, record: WorkflowRecord, names: list[str], known: Mapping[str, TaskRecord]
    ) -> dict[str, str]:
        """Publish each step's request; returns the steps whose task id was refused, with why."""
        refused: dict[str, str] = {}
        steps = {s.name: s for s in record.workflow.steps}
        for name in names:
            step = steps[name]
            records = await self._needed(record, step, known)
            try:
                await publish_request(self.bus, request_of(record, step, records), None)
            except IdConflict as exc:
                refused[name] = str(exc)
        return refused

    async def _needed(
        self, record: WorkflowRecord, step: Step, known: Mapping[str, TaskRecord]
    ) -> dict[str, TaskRecord]:
        """The task records of the steps `step` needs or names in its prompt."""
        out: dict[str, TaskRecord] = {}
        for name in {*(n.step for n in step.edges()), *references(step.prompt)}:
            task = known.get(name) or await self._task(record.step(name).task_id)
            if task is not None:
                out[name] = task
        return out

    async def _task(self, task_id: str) -> TaskRecord | None:
        raw = await self.tasks.read(task_id)
        return codec.decode(TaskRecord, raw) if raw else None

    async def _cancel(
        self, record: WorkflowRecord, names: list[str], known: Mapping[str, TaskRecord]
    ) -> None:
        """Cancel the tasks of these steps that have a record (one without is cancelled when it gets one)."""
        for name in names:
            task = known.get(name) or await self._task(record.step(name).task_id)
            if task is not None and task.state not in TERMINAL_STATES:
                await self._cancel_task(record, task)

    async def _cancel_new(self, record: WorkflowRecord, known: Mapping[str, TaskRecord]) -> None:
        """A step whose task was just created while the workflow ends: cancel it now that it can be."""
        if record.ending is None and record.state not in WORKFLOW_ENDED:
            return
        for task in known.values():
            if task.state not in TERMINAL_STATES:
                await self._cancel_task(record, task)

    async def _cancel_task(self, record: WorkflowRecord, task: TaskRecord) -> None:
        by = record.cancelled_by or "workflow"
        try:
            await cancel(self.bus, task, by=by, reason=f"workflow {record.id}: {record.reason}")
        except AlreadyEnded:
            pass

    async def _publish(self, event: WorkflowEvents, slot: str) -> None:
        await self.bus.publish(
            topics.WORKFLOW_EVENTS.subject(event.tenant, event.workflow_id),
            event,
            msg_id=f"{event.workflow_id}.{slot}",
        )


def request_of(record: WorkflowRecord, step: Step, records: Mapping[str, TaskRecord]) -> TaskRequest:
    """The task request of one step, its prompt filled in and its needs' outputs in its context."""
    workflow = record.workflow
    return TaskRequest(
        id=record.step(step.name).task_id,
        tenant=workflow.tenant,
        role=step.role,
        prompt=render(step.prompt, workflow.id, records),
        context=[*step.context, *context_of([n.step for n in step.edges()], records)],
        commands=step.commands,
        model=step.model,
        labels={**workflow.labels, **step.labels, "workflow": workflow.id, "step": step.name},
        max_cost_micro_usd=step.max_cost_micro_usd,
        parent=workflow.id,
        timeouts=step.timeouts,
        retry=step.retry,
    )


def _ended(record: WorkflowRecord, now: datetime) -> WorkflowEnded:
    return WorkflowEnded(
        workflow_id=record.id,
        tenant=record.tenant,
        at=now,
        state=record.state,
        reason=record.reason,
        cost_micro_usd=record.cost_micro_usd,
    )


def _same(record: WorkflowRecord, workflow: Workflow, fingerprint: str) -> WorkflowRecord:
    if record.tenant != workflow.tenant:
        raise IdConflict(f"workflow id {workflow.id} belongs to another tenant's workflow")
    if record.digest != fingerprint:
        raise IdConflict(f"workflow id {workflow.id} was already used for another definition")
    return record
