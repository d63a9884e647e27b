"""The orchestrator service: consume every task event, apply it to the task's record in KV, serve the API."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from nats.js import JetStreamContext
from prometheus_client import CollectorRegistry, Counter, Histogram

from maestro import history, lifecycle, topics
from maestro.bus import Bus
from maestro.claims import IdConflict
from maestro.deliveries import Consumer, Delivery
from maestro.errors import Reject, Retry
from maestro.lifecycle import Applied, Command, Duplicate, Refused
from maestro.runtime import Service
from maestro.tenant_labels import TenantLabels
from proto.v1 import (
    ENDING_EVENTS,
    TERMINAL_STATES,
    Accepted,
    AttemptFailed,
    AwaitingApproval,
    Claimed,
    Escalated,
    HandedOff,
    Queued,
    Released,
    TaskEvent,
    TaskRecord,
)
from proto.v1.ids import is_human
from proto.v1.workflows import Workflow, WorkflowControl, WorkflowRecord
from services.orchestrator import notifier
from services.orchestrator.api import routes
from services.orchestrator.batches import KeyedBatches, Outcome
from services.orchestrator.dispatch.dispatcher import Dispatcher, DispatchMetrics
from services.orchestrator.dispatch.shares import Shares
from services.orchestrator.effects import Effects
from services.orchestrator.folding import fold_when_needed
from services.orchestrator.human_queues import HumanQueues
from services.orchestrator.lag import BacklogGauges
from services.orchestrator.lag import refresh as refresh_backlog
from services.orchestrator.leading import Leadership
from services.orchestrator.lease import Lease
from services.orchestrator.reviews.serving import serve_reviews
from services.orchestrator.running import RunningGauges, RunningTasks
from services.orchestrator.store import Conflict, TaskStore, Versioned
from services.orchestrator.workflows.runner import Ended, Runner, step_of

log = logging.getLogger(__name__)

EVENTS: Consumer[TaskEvent] = Consumer(
    stream=topics.STREAM_EVENTS,
    durable=topics.DURABLE_ORCHESTRATOR,
    filter_subject=topics.EVENTS.all,
    type=TaskEvent,  # type: ignore[arg-type]
    origin="orchestrator",
    # Events wait up to the record linger for their task's next ones: room for that many at full speed.
    window=8192,
)

WORKFLOWS: Consumer[Workflow] = Consumer(
    stream=topics.STREAM_WORKFLOWS,
    durable=topics.DURABLE_ORCHESTRATOR_WORKFLOWS,
    filter_subject=topics.WORKFLOWS.all,
    type=Workflow,
    origin="orchestrator",
    # Anyone may publish here: a misspelt field is refused, never dropped in silence.
    strict=True,
)

VERSION = "1.0.0"

# Compare-and-set attempts on one event before handing it back to the bus for a later redelivery.
_CAS_ATTEMPTS = 5


_TASK_SECONDS_BUCKETS = (
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    120,
    300,
    600,
    1800,
    3600,
    4 * 3600,
    86_400,
)
"""From a twentieth of a second (the offline backend) to a day (a task parked for a person's approval)."""


@dataclass(frozen=True)
class OrchestratorMetrics:
    """What the state machine did with each event, how many tasks entered each state (per tenant), and how
    long tasks took from submission to their end."""

    transitions: Counter
    states: Counter
    task_seconds: Histogram
    tenant_label: TenantLabels

    @classmethod
    def create(cls, registry: CollectorRegistry, tenant_label: TenantLabels) -> OrchestratorMetrics:
        """Register the orchestrator's metrics on `registry`, naming tenants by `tenant_label`."""
        return cls(
            transitions=Counter(
                "maestro_orchestrator_transitions_total",
                "Task events by what the state machine did with them (applied, repaired, refused, duplicate)",
                ["result"],
                registry=registry,
            ),
            states=Counter(
                "maestro_tasks_state_total",
                "Tasks that entered each state, by tenant (bounded: MAESTRO_METRICS_TENANTS)",
                ["state", "tenant"],
                registry=registry,
            ),
            task_seconds=Histogram(
                "maestro_task_seconds",
                "Time from a task's submission (its acceptance by the guard) to its terminal state",
                ["role", "state"],
                buckets=_TASK_SECONDS_BUCKETS,
                registry=registry,
            ),
            tenant_label=tenant_label,
        )

    def entered(self, record: TaskRecord) -> None:
        """A task's record just entered its state: count it, and time it if that state ends the task."""
        self.states.labels(record.state, self.tenant_label(record.tenant)).inc()
        if record.state in TERMINAL_STATES:
            ended = record.finished_at or record.updated_at
            took = (ended - record.created_at).total_seconds()
            self.task_seconds.labels(record.role or "none", record.state).observe(max(took, 0.0))


Item = tuple[TaskEvent, Delivery]


@dataclass
class _Tally:
    """Metric counts of one batch, applied only once its write succeeded."""

    results: list[str] = field(default_factory=list)
    entered: list[TaskRecord] = field(default_factory=list)

    def applied(self, record: TaskRecord, changed_state: bool, result: str = "applied") -> None:
        self.results.append(result)
        if changed_state:
            self.entered.append(record)


class Orchestrator:
    """Applies task events to task records: one task's events in stream order, each batch in one write.

    Events may arrive in any order (a crashed replica's unacked events come back only after the ack wait,
    a retry overtakes, replicas race). An event that needs one stored before it is never retried blindly or
    dropped: the orchestrator reads what it missed of the task from the events stream, in stream order, and
    folds it first, so the record converges to the stream whatever the delivery order.
    """

    def __init__(
        self,
        store: TaskStore,
        js: JetStreamContext,
        metrics: OrchestratorMetrics,
        effects: Effects,
        workflows: Runner,
        linger_s: float = 0.0,
        waiting_linger_s: float = 0.0,
        heard: Callable[[TaskEvent], None] = lambda _: None,
        written: Callable[[TaskRecord | None, TaskRecord], None] = lambda _, __: None,
    ) -> None:
        self.store = store
        self.js = js
        self.metrics = metrics
        self.effects = effects
        self.workflows = workflows
        self.heard = heard
        """Told of each event as it arrives, before its record is written (the dispatcher's ears)."""
        self.written = written
        """Told of each record once it is written, with the one it replaced (the gauges of open tasks)."""
        # A record may lag its task's events by up to `linger_s`, or `waiting_linger_s` while the task has
        # not started (its events stay unacknowledged until then); an event that parks, queues for a person
        # or ends the task is written at once. The waiting lingers hold at most half the events' window, so
        # the events of tasks that run keep coming.
        self.batches: KeyedBatches[Item] = KeyedBatches(
            self._process,
            linger_s=linger_s,
            urgent=_written_at_once,
            patient=_before_start,
            patient_linger_s=waiting_linger_s,
            max_patient=(EVENTS.window or 0) // 2,
        )

    async def handle_batch(self, items: list[Item]) -> list[Exception | None]:
        """Fold events that arrived together into their tasks' records, each task's in the order they came;
        what became of each: None, Reject when the subject and the event disagree about the task, Retry when
        the record kept changing under us (it is then delivered again later)."""
        for event, _ in items:
            self.heard(event)
        futures = [self.batches.enqueue(event.task_id, (event, delivery)) for event, delivery in items]
        outcomes: list[Exception | None] = []
        for future in futures:
            try:
                await future
            except Exception as exc:
                outcomes.append(exc)
            else:
                outcomes.append(None)
        return outcomes

    async def _process(self, task_id: str, items: list[Item]) -> list[Outcome]:
        for attempt in range(_CAS_ATTEMPTS):
            try:
                return await self._apply(items, reread=attempt > 0)
            except Conflict:
                continue
        return [Retry(0.1, f"task {task_id} kept changing; {_CAS_ATTEMPTS} writes lost") for _ in items]

    async def _apply(self, items: list[Item], *, reread: bool) -> list[Outcome]:
        first = items[0][0]
        current, fresh = (None if reread else self.store.cached(first.task_id)), False
        if current is None and (reread or not _creates(first)):
            # An acceptance creates the record, so at first it skips the read: the create fails if one exists.
            current, fresh = await self.store.get(first.task_id), True
        record = current.record if current else None
        outcomes: list[Outcome] = []
        tally = _Tally()
        commands: list[Command] = []
        for event, delivery in items:
            tenant, task_id = topics.EVENTS.values(delivery.subject)
            if (tenant, task_id) != (event.tenant, event.task_id):
                outcomes.append(
                    Reject(f"event for {event.tenant}/{event.task_id} stored on {delivery.subject}")
                )
                continue
            result = lifecycle.step(record, event, delivery.stream_seq)
            if isinstance(result, Refused):
                if not fresh:
                    # A refusal must rest on the stored record, not on what this process remembers.
                    raise Conflict(event.task_id, current.revision if current else None)
                if result.early:
                    record, result = await self._caught_up(record, event, delivery, tally, commands)
            if isinstance(result, Applied | Refused):
                commands.extend(result.commands)
            match result:
                case Applied(record=applied):
                    record = applied
                    tally.applied(applied, result.changed_state)
                case Duplicate():
                    tally.results.append("duplicate")
                case Refused(reason=reason):
                    was = record.state if record else "absent"
                    context = {"task_id": event.task_id, "tenant": event.tenant}
                    log.warning("refused %s (task %s): %s", lifecycle.kind(event), was, reason, extra=context)
                    tally.results.append("refused")
            outcomes.append(None)
        # What the events decided is done before the record says they were applied: a crash in between
        # brings the events back, and the same commands (same message ids) change nothing the second time.
        await self.effects.run(commands)
        if record is not None and (current is None or record is not current.record):
            await self.store.put(record, current.revision if current else None)
            self.written(current.record if current else None, record)
        if record is not None and step_of(record) is not None and _step_moved(current, record, items):
            # After the record is stored, so the workflow reads this step's output when it fills in the next
            # steps; before the events are acked, so a crash here hears it again (as a duplicate) and tells
            # the workflow again, which changes nothing the second time.
            await self.workflows.step_changed(record)
        for name in tally.results:
            self.metrics.transitions.labels(name).inc()
        for entered in tally.entered:
            self.metrics.entered(entered)
        return outcomes

    async def _caught_up(
        self,
        record: TaskRecord | None,
        event: TaskEvent,
        delivery: Delivery,
        tally: _Tally,
        commands: list[Command],
    ) -> tuple[TaskRecord | None, lifecycle.Step]:
        """Fold what the record missed of the task, stored before `event`, then `event` itself."""
        after = record.last_event_seq if record else 0
        for seq, earlier in await history.stored_between(
            self.js, delivery.subject, after, delivery.stream_seq
        ):
            if earlier.task_id != event.task_id or earlier.tenant != event.tenant:
                continue
            caught = lifecycle.step(record, earlier, seq)
            if isinstance(caught, Applied | Refused):
                commands.extend(caught.commands)
            if isinstance(caught, Applied):
                record = caught.record
                tally.applied(caught.record, caught.changed_state, "repaired")
        return record, lifecycle.step(record, event, delivery.stream_seq, first=record is None)


def _creates(event: TaskEvent) -> bool:
    """Whether the event is a task's acceptance (alone, or stored with its verdict as one Queued event)."""
    return isinstance(event, Accepted) or (isinstance(event, Queued) and event.accepted is not None)


def _written_at_once(item: Item) -> bool:
    """Whether the event's record is written without lingering: it parks the task for a person (who approves
    as soon as they see it), queues it for a person of a human queue (whose inbox lists the records), or ends
    the task (what everyone waits for).

    The events that create a task and start it (accepted, queued, started) linger together: a task that
    ends within the linger is written once, and one that runs longer once before its end. Until then the
    API answers for the task from its stored events (lifecycle.fold)."""
    event = item[0]
    return isinstance(event, _AT_ONCE) or (isinstance(event, Queued) and is_human(event.role))


_AT_ONCE = (AwaitingApproval, Claimed, Released, Escalated, HandedOff, *ENDING_EVENTS)


def _before_start(item: Item) -> bool:
    """Whether the event comes before its task starts (it is accepted, or waits for its agent's turn): its
    record may wait MAESTRO_RECORD_WAITING_LINGER_S for the task to start, and, if it ends meanwhile, is
    written once instead of as queued first. Under a backlog at the dispatcher most tasks wait a second or
    two: each such task was written twice."""
    return isinstance(item[0], (Accepted, Queued))


def _step_moved(current: Versioned | None, record: TaskRecord, items: list[Item]) -> bool:
    """Whether a workflow must hear of this step's task: it was just created, or these events end it (again,
    when they are delivered again after a crash), or add to what it cost after it ended."""
    if current is None:
        return True
    return record.state in TERMINAL_STATES and any(isinstance(event, _STEP_NEWS) for event, _ in items)


_STEP_NEWS = (*ENDING_EVENTS, AttemptFailed)
"""Events of an ended step its workflow hears of: its end, and a stopped attempt's late report of its cost."""


async def start_workflow(runner: Runner, workflow: Workflow, delivery: Delivery) -> None:
    """Start a workflow published on its tenant's subject; raises Reject when it cannot be."""
    (tenant,) = topics.WORKFLOWS.values(delivery.subject)
    if tenant != workflow.tenant:
        raise Reject(f"workflow for tenant {workflow.tenant} published on {delivery.subject}")
    try:
        await runner.start(workflow)
    except IdConflict as exc:
        raise Reject(str(exc)) from None


async def control_workflow(runner: Runner, order: WorkflowControl) -> WorkflowRecord:
    """Answer a pause, resume or cancel order; raises NotFound, or Reject when the workflow has ended."""
    try:
        return await runner.control(order)
    except Ended as exc:
        raise Reject(str(exc)) from None


async def serve(bus: Bus) -> None:
    """Apply every task event to its record and start every workflow submitted, until the bus stops; run for
    the lead, and do the leader's jobs while holding it (services/orchestrator/leading.py)."""
    tasks = TaskStore(bus)
    runner = Runner(bus, tasks)
    tenant_label = TenantLabels(bus.settings.metrics_tenants)
    running = RunningTasks()
    bus.metrics.registry.register(RunningGauges(running, functools.partial(datetime.now, UTC)))
    dispatching: Callable[[], Dispatcher] | None = None
    if bus.settings.fair_dispatch:
        dispatch_metrics = DispatchMetrics.create(bus.metrics.registry, time.monotonic, tenant_label)
        dispatching = functools.partial(
            Dispatcher,
            bus,
            Shares(),
            dispatch_metrics,
            ahead=bus.settings.dispatch_ahead,
            tenant_label=tenant_label,
        )
    leadership = Leadership(
        bus, tasks, running, HumanQueues(bus.metrics.registry), dispatching, version=VERSION
    )
    backlog = BacklogGauges()
    bus.metrics.registry.register(backlog)
    orchestrator = Orchestrator(
        store=tasks,
        js=bus.js,
        metrics=OrchestratorMetrics.create(bus.metrics.registry, tenant_label),
        effects=Effects(bus),
        workflows=runner,
        linger_s=bus.settings.record_linger_s,
        waiting_linger_s=bus.settings.record_waiting_linger_s,
        heard=leadership.heard,
        written=leadership.written,
    )
    leases = await bus.js.key_value(topics.BUCKET_LEASES)
    lease = Lease(leases, topics.LEADER_KEY, bus.settings.worker, bus.settings.leader_lease_s, bus.lifetime)
    async with asyncio.TaskGroup() as group:
        group.create_task(lease.run(leadership.lead), name="leader lease")
        group.create_task(_hurry_when_stopping(bus, orchestrator.batches), name="hurry")
        group.create_task(refresh_backlog(bus, backlog), name="backlog")
        group.create_task(bus.consumers.consume(WORKFLOWS, functools.partial(start_workflow, runner)))
        group.create_task(serve_reviews(bus, runner, tasks), name="reviews")
        group.create_task(notifier.serve(bus), name="notifier")
        group.create_task(
            bus.calls.serve(
                topics.ORCHESTRATOR_SERVICE,
                VERSION,
                [(topics.WORKFLOW_CONTROL, functools.partial(control_workflow, runner))],
            )
        )
        await fold_when_needed(
            bus,
            lambda: leadership.leading,
            leadership.lead_changed,
            EVENTS,
            orchestrator.handle_batch,
        )


async def _hurry_when_stopping(bus: Bus, batches: KeyedBatches[Item]) -> None:
    """When the bus stops, write the lingering records at once, so that stopping waits for no linger."""
    await bus.lifetime.stopped()
    batches.hurry()


SERVICE = Service(name="orchestrator", default_port=8080, serve=serve, routes=routes)
