"""Run workflows: start one, move it on when a step's task ends, pause, resume, cancel (dag.py's I/O).

Every change is folded into the workflow's record by compare-and-set, one workflow at a time per process.
What the record then calls for (steps to submit, to cancel, the escrow to give back, the workflow's end to
announce) is done after the record is written, so nothing is done on a record another replica has changed
meanwhile: the write fails, and the change is decided again on what the bucket holds. A crash in between
is repaired by doing it again whenever the record is read from the bucket (a restarted or another replica
always reads it): its `pending` steps are submitted again, and an ended workflow's escrow and end are given
back and announced again; a step's request is claimed and published under its task id and content (the
same request twice is one task), a cancel is one per task, and an event has a message id. The events a
change itself makes (paused, resumed) are stored before the write, as they describe the change.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from msgspec import structs
from nats.js.errors import NotFoundError

from maestro import claims, codec, topics
from maestro.bus import Bus
from maestro.cancel import AlreadyEnded, cancel
from maestro.claims import IdConflict
from maestro.client import publish_request
from maestro.errors import MaestroError, NotFound, RemoteError, Retry
from maestro.estimates import Prices
from proto.v1 import TERMINAL_STATES, Reserve, TaskRecord, TaskRequest, reservation_id_for
from proto.v1.workflows import (
    STEP_ENDED,
    WORKFLOW_ENDED,
    Plan,
    Step,
    Workflow,
    WorkflowControl,
    WorkflowEnded,
    WorkflowEvents,
    WorkflowPaused,
    WorkflowRecord,
    WorkflowResumed,
    WorkflowStarted,
    escrow_task_id,
    references,
    step_name,
)
from services.orchestrator.batches import KeyedBatches, Outcome
from services.orchestrator.effects import release_hold
from services.orchestrator.store import Conflict, TaskStore
from services.orchestrator.workflows import dag
from services.orchestrator.workflows.escrow import workflow_estimate
from services.orchestrator.workflows.store import WorkflowStore
from services.orchestrator.workflows.template import context_of, render

log = logging.getLogger(__name__)

_CAS_ATTEMPTS = 5


class Ended(MaestroError):
    """The workflow has ended: it can no longer be paused, resumed or cancelled."""


def step_of(task: TaskRecord) -> str | None:
    """The step a task may be of (by its id and parent; the workflow then checks it has that step)."""
    return step_name(task.id, task.parent)


@dataclass(frozen=True)
class StepChanged:
    """A step's task was created or ended."""

    task: TaskRecord


@dataclass(frozen=True)
class Pause:
    by: str
    reason: str = ""


@dataclass(frozen=True)
class Resume:
    by: str
    reason: str = ""


@dataclass(frozen=True)
class Cancel:
    by: str
    reason: str = ""


Change = StepChanged | Pause | Resume | Cancel


class Runner:
    """Workflows on a bus: the orchestrator's service, its API and the SDK all drive them through this."""

    def __init__(self, bus: Bus, tasks: TaskStore | None = None) -> None:
        self.bus = bus
        self.prices = Prices.of(bus.settings)
        self.max_subtasks = bus.settings.max_plan_subtasks
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
            # Started already; a start that died between its write and its first steps is finished here.
            record = _same(found[0], workflow, fingerprint)
            return await self._settled(found, record, {}, repair=True)
        now = datetime.now(UTC)
        record = dag.created(workflow, fingerprint, now)
        held, refusal = await self._hold(record)
        if refusal is not None:
            record = dag.refused(record, refusal, now)
        else:
            record = structs.replace(record, escrow_micro_usd=held)
        first = dag.progress(record, now).record
        submitted = [s.name for s in first.steps if s.state != "waiting"]
        started = WorkflowStarted(workflow_id=workflow.id, tenant=workflow.tenant, at=now, steps=submitted)
        await self._publish(started, "started")
        try:
            record = await self._settled(None, record, {}, repair=False)
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
                change = Pause(by, order.reason)
            case "resume":
                change = Resume(by, order.reason)
            case _:
                change = Cancel(by, order.reason)
        return await self.change(order.workflow_id, change)

    async def _process(self, workflow_id: str, changes: list[Change]) -> list[Outcome]:
        for attempt in range(_CAS_ATTEMPTS):
            # A step's news starts from what this replica wrote last (the write checks it is still so); a
            # pause, resume or cancel, or a change that lost a write, from what the bucket holds.
            steps_only = attempt == 0 and all(isinstance(c, StepChanged) for c in changes)
            remembered = self.store.remembered(workflow_id) if steps_only else None
            found = remembered or await self.store.get(workflow_id)
            if found is None:
                missing = NotFound(f"no workflow {workflow_id}")
                return [None if isinstance(c, StepChanged) else missing for c in changes]
            outcomes, events, known, changed = self._fold(found[0], changes)
            for event, slot in events:
                await self._publish(event, slot)
            try:
                await self._settled(found, changed, known, repair=remembered is None)
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
                            record = self._step_ended(record, name, task)
                case _ if record.state in WORKFLOW_ENDED or record.ending is not None:
                    outcome = Ended(f"workflow {record.id} has {record.ending or record.state}")
                case Pause(by=by, reason=reason) if record.state == "running":
                    record = structs.replace(record, state="paused", updated_at=now)
                    paused = WorkflowPaused(
                        workflow_id=record.id, tenant=record.tenant, at=now, by=by, reason=reason
                    )
                    events.append((paused, f"paused-{now:%s%f}"))
                case Resume(by=by, reason=reason) if record.state == "paused":
                    record = structs.replace(record, state="running", updated_at=now)
                    resumed = WorkflowResumed(
                        workflow_id=record.id, tenant=record.tenant, at=now, by=by, reason=reason
                    )
                    events.append((resumed, f"resumed-{now:%s%f}"))
                case Cancel(by=by, reason=reason):
                    why = reason or f"cancelled by {by}"
                    record = structs.replace(record, ending="cancelled", reason=why, cancelled_by=by)
            outcomes.append(outcome)
        return outcomes, events, known, record

    def _step_ended(self, record: WorkflowRecord, name: str, task: TaskRecord) -> WorkflowRecord:
        """Fold a step's ended task; a planner step that expands adds its plan's subtasks, once."""
        was = record.step(name).state
        ended = dag.step_ended(record, task)
        if was in STEP_ENDED or task.state != "succeeded" or not _definition(record, name).expand:
            return ended
        try:
            plan: Plan | str = codec.decode_strict(Plan, task.output)
        except codec.DecodeError as exc:
            plan = f"the planner's answer is not a plan: {exc}"
        # The tenant's bundle bounds the plan (the guard says by how much when it queues the planner), and the
        # deployment's setting bounds it too: the escrow held room for that many.
        bound = min(task.max_plan_subtasks if task.max_plan_subtasks is not None else 0, self.max_subtasks)
        grown = plan if isinstance(plan, str) else dag.expanded(ended, name, plan, bound)
        if not isinstance(grown, str):
            return grown
        failed = [
            structs.replace(s, state="failed", error=f"invalid plan: {grown}") if s.name == name else s
            for s in ended.steps
        ]
        return structs.replace(ended, steps=failed)

    # -- the escrow ------------------------------------------------------------------------------------------
    async def _hold(self, record: WorkflowRecord) -> tuple[int, str | None]:
        """Hold the whole workflow's estimate before any step runs; returns it, and why it cannot be held.

        Raises Retry when the budget cannot answer now.
        """
        workflow = record.workflow
        amount = workflow_estimate(workflow, self.prices, self.max_subtasks)
        ceiling = workflow.max_cost_micro_usd
        if ceiling is not None and amount > ceiling:
            return amount, f"the workflow's estimate of {amount} micro-USD exceeds its ceiling of {ceiling}"
        if amount == 0:
            return 0, None
        reserve = Reserve(
            tenant=workflow.tenant,
            task_id=escrow_task_id(workflow.id),
            estimate_micro_usd=amount,
            ttl_s=self.bus.settings.workflow_hold_ttl_s,
            for_workflow=True,
        )
        try:
            reservation = await self.bus.calls.request(topics.BUDGET_RESERVE, reserve, key=workflow.tenant)
        except RemoteError as exc:
            if exc.transient:
                raise Retry(1.0, f"budget unavailable for workflow {workflow.id}'s escrow: {exc}") from None
            return (
                amount,
                f"the budget refused the workflow's estimate of {amount} micro-USD: {exc.description}",
            )
        if not reservation.granted:
            why = reservation.reason
            return amount, f"the workflow's estimate of {amount} micro-USD does not fit the budget: {why}"
        return amount, None

    async def _release(self, record: WorkflowRecord) -> None:
        """Give back what is left of the escrow of a workflow that has ended (nothing when none was held)."""
        if record.escrow_micro_usd:
            await release_hold(self.bus, record.tenant, reservation_id_for(escrow_task_id(record.id)))

    # -- doing -----------------------------------------------------------------------------------------
    async def _settled(
        self,
        stored: tuple[WorkflowRecord, int] | None,
        record: WorkflowRecord,
        known: Mapping[str, TaskRecord],
        *,
        repair: bool,
    ) -> WorkflowRecord:
        """Decide what `record` (a change of `stored`, the record and its revision; None: a new workflow)
        calls for, write it, then do it, until nothing more follows (a step whose request is refused is
        rejected and decided on again). `repair`: `stored` was read from the bucket, so what a crash after
        its write may have left undone is done again. Raises Conflict when the record changed meanwhile
        (nothing was done)."""
        now = datetime.now(UTC)
        written, revision = stored if stored is not None else (None, None)
        ended_before = written is not None and written.state in WORKFLOW_ENDED
        again = [s.name for s in written.steps if s.state == "pending"] if repair and written else []
        for _ in range(len(record.steps) + 1):
            progress = dag.progress(record, now)
            record = progress.record
            if record != written:
                revision = await self.store.put(record, revision)
                written = record
            # A pending step of the record as read has had its request published, or its writer died first.
            again = [name for name in again if record.step(name).state == "pending"]
            refused = await self._submit(record, [*again, *progress.submit], known)
            again = []
            await self._cancel(record, progress.cancel, known)
            if not refused:
                break
            record = structs.replace(
                record,
                steps=[
                    structs.replace(s, state="rejected", error=refused[s.name]) if s.name in refused else s
                    for s in record.steps
                ],
            )
        await self._cancel_new(record, known)
        if record.state in WORKFLOW_ENDED and not ended_before:
            await self._release(record)
            await self._publish(_ended(record, now), "ended")
        elif record.state in WORKFLOW_ENDED and repair and not await self._announced_end(record):
            # Ended by a write whose writer died before giving the escrow back and announcing the end.
            await self._release(record)
            await self._publish(_ended(record, record.finished_at or now), "ended")
        return record

    async def _announced_end(self, record: WorkflowRecord) -> bool:
        """Whether the workflow's last stored event is its end."""
        subject = topics.WORKFLOW_EVENTS.subject(record.tenant, record.id)
        try:
            last = await self.bus.js.get_msg(topics.STREAM_EVENTS, subject=subject)
        except NotFoundError:
            return False
        return isinstance(codec.decode(topics.WORKFLOW_EVENTS.type, last.data or b""), WorkflowEnded)

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
        await self.bus.streams.publish(
            topics.WORKFLOW_EVENTS.at(event.tenant, event.workflow_id),
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
        expand=step.expand,
        priority=workflow.priority if step.priority is None else step.priority,
        human=step.human,
        hand_off=step.hand_off,
    )


def _definition(record: WorkflowRecord, name: str) -> Step:
    return next(s for s in record.workflow.steps if s.name == name)


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
