"""The agent worker: pull each served role's tasks, do the work, store artifacts, pay, report the outcome."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

import nats.errors
from msgspec import structs
from nats.js.errors import NotFoundError
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

from maestro import codec, history, topics
from maestro.bus import Bus
from maestro.deliveries import Consumer, Delivery
from maestro.errors import Reject, RemoteError, Retry, WrongRevision
from maestro.estimates import Prices
from maestro.policy.bundle import load_default
from maestro.policy.bundle_store import Policies, following
from maestro.policy.engine import warm
from maestro.presence import announcing
from maestro.runtime import Service
from proto.v1 import (
    ENDING_EVENTS,
    ROLES,
    ArtifactRef,
    AttemptFailed,
    Commit,
    ContextFile,
    HandedOff,
    Heartbeat,
    Release,
    Role,
    Settlement,
    Started,
    Succeeded,
    TaskAssignment,
    TaskRequest,
    Usage,
)
from proto.v1.agents import FinishedWork
from proto.v1.tasks import FailureKind
from services.agents import attempts, rails
from services.agents.attempts import bounded
from services.agents.backends import Backend, ModelFailed
from services.agents.backends.base import OverBudget
from services.agents.backends.choice import closing, open_backend
from services.agents.backends.metered import Allowance, Metered
from services.agents.heartbeat import heartbeats
from services.agents.metrics import AgentMetrics
from services.agents.roles import RUNNERS, RoleResult
from services.agents.sandbox import Sandbox, open_sandbox, remove_stale_workspaces
from services.agents.stop import STOPS, StopNotices, stopped_result

log = logging.getLogger(__name__)

ORIGIN = "agents"
RUNNING = (Started, Heartbeat)
"""Events that say a worker began the task (and may have finished its work)."""
_LEASE_OF_ACK_WAIT = 0.75
"""A worker heard from within this share of the ack wait still runs its task (it beats every half)."""


T = TypeVar("T")

# How long finished work is retried into its store before the delivery fails (and the work, lost, reruns).
_STORE_PATIENCE_S = 120.0


async def store_durably(what: str, write: Callable[[], Awaitable[T]]) -> T:
    """`write()`, again with backoff while NATS cannot take it (for up to _STORE_PATIENCE_S)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _STORE_PATIENCE_S
    delay = 0.1
    while True:
        try:
            return await write()
        except (nats.errors.Error, TimeoutError) as exc:
            if loop.time() + delay > deadline:
                raise
            log.warning("could not store %s yet, retrying in %.1fs: %r", what, delay, exc)
            await asyncio.sleep(delay)
            delay = min(2 * delay, 2.0)


def _quiet_s(last: history.Stored) -> float:
    """Seconds since a task's last event was stored (by the server's clock, else the event's own)."""
    at = last.stored_at or last.event.at
    return max(0.0, (datetime.now(UTC) - at).total_seconds())


def served_roles(names: tuple[str, ...]) -> list[Role]:
    """The known roles among `names`, in order, each once."""
    return [role for role in ROLES if role in names]


@dataclass(frozen=True)
class Worker:
    """Everything a task needs, built once per process and shared by every role's consumer."""

    bus: Bus
    backend: Backend
    sandbox: Sandbox
    artifacts: ObjectStore
    finished: KeyValue
    """Work done and not yet paid for and reported (topics.BUCKET_WORK), by task id."""
    metrics: AgentMetrics
    stops: StopNotices
    """Stop notices for the tasks this process runs (one subscription for all of them)."""
    running: set[str] = field(default_factory=set)
    """Tasks this process is handling now: another delivery of one of them waits (a redelivery that came
    while this process could not reach the server to keep its message alive)."""
    policies: Policies = field(default_factory=lambda: Policies(load_default()))
    """The policy bundle in force (serve follows it): the output rails apply its families to every result."""

    async def handle(self, assignment: TaskAssignment, delivery: Delivery) -> None:
        """Run one attempt of a task to its outcome event, once, however often it is delivered; the bus acks
        on return.

        Before it starts, the worker reads the task's last event: a task that ended, or that moved past this
        attempt, is not run again, and `Started` is stored only if nothing else was stored on the task since
        (two copies of one task race there, and one loses). Finished work is stored before it is paid for, so
        a budget outage or a crash after the work never runs it again: the next delivery of the attempt only
        pays for it and reports it. A Cancelled or TimedOut heard while the role runs stops it (its commands
        are killed); the attempt fails, and is paid for. A failure is reported as AttemptFailed (the
        orchestrator retries the task or fails it), after keeping the assignment when a retry will need it.

        Raises Retry when the budget cannot be reached (the work stays stored), another delivery of the task
        is running, or a retry came before the orchestrator recorded it.
        """
        request = assignment.request
        if topics.TASKS.values(delivery.subject) != (request.role, request.tenant):
            raise Reject(f"a {request.role} task of {request.tenant} was handed over on {delivery.subject}")
        if request.id in self.running:
            raise Retry(self.bus.settings.ack_wait_s / 2, "this worker is running the task")
        self.running.add(request.id)
        try:
            await self._handle(assignment, delivery)
        finally:
            self.running.discard(request.id)

    async def _handle(self, assignment: TaskAssignment, delivery: Delivery) -> None:
        request = assignment.request
        subject = topics.EVENTS.at(request.tenant, request.id)
        work: FinishedWork | None = None
        if assignment.queued_seq:
            # Started is stored only if nothing was stored on the task since it was queued: then nothing
            # can have ended, started or stopped it, and its events need not be read first.
            with contextlib.suppress(WrongRevision):
                work = await self._work(assignment, delivery, assignment.queued_seq)
        if work is None:
            work = await self._work_unless_decided(assignment, delivery)
            if work is None:
                return
        outcome = await self._paid(assignment, attempts.reported(work.outcome))
        handed = attempts.handed_off(assignment, outcome)
        if handed is not None:
            await self._hand_off(assignment, handed, outcome, delivery)
            return
        slot = "outcome"
        if isinstance(outcome, AttemptFailed):
            # Kept before the failure is reported: the orchestrator reads it as soon as it decides to retry.
            await self._keep_for_retry(assignment, outcome.failure)
            slot = f"attempt-{assignment.attempt}"
        await self.bus.streams.publish(
            subject,
            outcome,
            msg_id=topics.event_msg_id(request.id, slot),
            traceparent=delivery.traceparent,
        )
        self._count(request, outcome)

    async def _hand_off(
        self,
        assignment: TaskAssignment,
        handed: HandedOff,
        outcome: Succeeded | AttemptFailed,
        delivery: Delivery,
    ) -> None:
        """Give the task to its hand-off queue: what its people read first, then the event that moves it."""
        request = assignment.request
        error = outcome.error if isinstance(outcome, AttemptFailed) else ""
        kept = codec.encode(attempts.for_people(assignment, handed, error))
        await store_durably(
            "hand-off", lambda: self.bus.streams.put(topics.BUCKET_HUMAN_TASKS, request.id, kept)
        )
        await self.bus.streams.publish(
            topics.EVENTS.at(request.tenant, request.id),
            handed,
            msg_id=topics.event_msg_id(request.id, f"handoff-{handed.attempt}"),
            traceparent=delivery.traceparent,
        )
        self.metrics.tasks.labels(request.role, "handed_off").inc()
        log.info(
            "handed off to %s: %s",
            handed.queue,
            handed.reason,
            extra={"task_id": request.id, "tenant": request.tenant},
        )

    async def _work_unless_decided(
        self, assignment: TaskAssignment, delivery: Delivery
    ) -> FinishedWork | None:
        """The work of this attempt, after reading the task's last event: done now, or found stored by a
        worker that died before reporting it; None when the attempt must not run (the task ended or moved
        past it)."""
        request = assignment.request
        subject = topics.EVENTS.subject(request.tenant, request.id)
        context = {"task_id": request.id, "tenant": request.tenant}
        last = await history.last_stored(self.bus.js, subject)
        stale = attempts.moved_past(last.event, assignment.attempt) if last is not None else None
        if stale is not None:
            log.info("attempt %d not run: %s", assignment.attempt, stale, extra=context)
            return None
        if last is not None and attempts.undecided(last.event, assignment.attempt):
            raise Retry(1.0, f"attempt {assignment.attempt} came before the orchestrator recorded its retry")
        ended = last is not None and isinstance(last.event, ENDING_EVENTS)
        running = last is not None and isinstance(last.event, RUNNING)
        # A task stopped mid-work may have left its work stored and unpaid (its worker died after storing it).
        stopped = last is not None and isinstance(last.event, STOPS)
        work = await self._finished(request.id, assignment.attempt) if running or stopped else None
        if work is not None:
            return work
        if last is not None and ended:
            tag = last.event.__struct_config__.tag
            log.info("task already ended (%s): not run again", tag, extra=context)
            return None
        if last is not None and running:
            # Someone started it. A worker that runs a task reports it at least every half ack wait, so
            # one heard from lately is alive (this is a second copy of the task, or a redelivery while
            # its worker was cut off from the server): wait, never run it beside them. A redelivery after
            # a crash comes a whole ack wait after the dead worker's last sign of life.
            quiet = _quiet_s(last)
            lease = _LEASE_OF_ACK_WAIT * self.bus.settings.ack_wait_s
            if quiet < lease:
                raise Retry(lease - quiet, "the task is running on a worker heard from lately")
        try:
            return await self._work(assignment, delivery, last.seq if last else 0)
        except WrongRevision:
            raise Retry(1.0, "another worker started this task just now") from None

    def _count(self, request: TaskRequest, outcome: Succeeded | AttemptFailed) -> None:
        if isinstance(outcome, Succeeded):
            self.metrics.tasks.labels(request.role, "succeeded").inc()
            return
        label = "stopped" if outcome.failure in ("cancelled", "timeout") else "failed"
        self.metrics.tasks.labels(request.role, label).inc()
        error = outcome.error.splitlines()[0] if outcome.error else ""
        context = {"task_id": request.id, "tenant": request.tenant}
        log.info("attempt %d %s (%s): %s", outcome.attempt, label, outcome.failure, error, extra=context)

    async def _work(self, assignment: TaskAssignment, delivery: Delivery, after_seq: int) -> FinishedWork:
        """Start the task if nothing was stored on it after stream sequence `after_seq`, do its work, and
        store what it produced; a stop heard meanwhile cancels the work, which then fails with what it used.

        Raises WrongRevision when something was stored after `after_seq` (nothing was done)."""
        request = assignment.request
        settings = self.bus.settings
        started = time.perf_counter()
        subject = topics.EVENTS.at(request.tenant, request.id)
        trace = delivery.traceparent
        attempt = assignment.attempt
        start = Started(
            task_id=request.id,
            tenant=request.tenant,
            at=datetime.now(UTC),
            worker=settings.worker,
            attempt=attempt,
            delivery=delivery.attempt,
        )

        async def beat(n: int) -> None:
            event = Heartbeat(
                task_id=request.id,
                tenant=request.tenant,
                at=datetime.now(UTC),
                worker=settings.worker,
                attempt=attempt,
            )
            await self.bus.streams.publish(subject, event, traceparent=trace)

        # Listening before Started is stored: a stop stored after Started is recorded by the orchestrator
        # after it, which then tells this worker; one stored before it makes Started fail (after_seq).
        with self.stops.order(request.id) as stop:
            await self.bus.streams.publish(subject, start, traceparent=trace, after_seq=after_seq)
            # At least twice per ack wait: a worker not heard from for an ack wait is taken to be gone.
            async with heartbeats(beat, every_s=min(settings.heartbeat_s, settings.ack_wait_s / 2)):
                ran = await stop.run(self._run(request))
                result = ran if isinstance(ran, RoleResult) else stopped_result(request, ran)
                work = await self._keep(request, result, attempt)
        self.metrics.task_seconds.labels(request.role).observe(time.perf_counter() - started)
        return work

    async def _keep(self, request: TaskRequest, result: RoleResult, attempt: int) -> FinishedWork:
        """Store the work done (its files as artifacts) until it is paid for and reported."""
        # The work is done: from here on a failure to store it would run it again, so storing is retried
        # here (NATS unreachable for a while, a leader moving) instead of failing the delivery.
        railed = rails.checked(result, self.policies.current.policy(request.tenant))
        result = railed.result  # nothing the role produced is stored, published or logged before this
        files = result.files if result.ok else []
        artifacts = await store_durably("artifacts", lambda: self._store(request, files)) if files else []
        worker = self.bus.settings.worker
        outcome = attempts.outcome_event(request, result, artifacts, worker, attempt)
        work = FinishedWork(outcome=railed.recorded(outcome))
        stored = codec.encode(work)
        await store_durably(
            "finished work", lambda: self.bus.streams.put(topics.BUCKET_WORK, request.id, stored)
        )
        return work

    async def _finished(self, task_id: str, attempt: int) -> FinishedWork | None:
        """The stored work of this `attempt` of the task, if any (an earlier attempt's is not this one's)."""
        # From the bucket's leader: a replica that lags behind would hide work done, and it would run again.
        try:
            raw = await self.bus.js.get_msg(
                topics.kv_stream(topics.BUCKET_WORK), subject=topics.kv_subject(topics.BUCKET_WORK, task_id)
            )
        except NotFoundError:
            return None
        work = codec.decode(FinishedWork, raw.data) if raw.data else None
        return work if work is not None and work.outcome.attempt == attempt else None

    async def _paid(
        self, assignment: TaskAssignment, outcome: Succeeded | AttemptFailed
    ) -> Succeeded | AttemptFailed:
        """The outcome with what the budget charged for it (the charge of the first commit, when this one
        repeats it); a commit the budget refuses for good fails the attempt (`budget`, never retried) and
        gives its hold back.

        Raises Retry when the budget cannot answer now.
        """
        request = assignment.request
        usage = outcome.usage or Usage(model="none")
        try:
            settlement = await self._commit(assignment, usage)
        except RemoteError as exc:
            context = {"task_id": request.id, "tenant": request.tenant}
            if exc.code >= 500:
                log.warning("budget unavailable, retrying the commit: %s", exc, extra=context)
                self.metrics.tasks.labels(request.role, "retry").inc()
                raise Retry(1.0, f"budget commit: {exc}") from None
            # Refused for good (an unknown reservation, say): output that was not paid for is not delivered.
            log.error("budget refused the commit: %s", exc, extra=context)
            await self._release(assignment)
            return AttemptFailed(
                task_id=request.id,
                tenant=request.tenant,
                at=outcome.at,
                error=f"budget refused the commit: {exc}",
                worker=outcome.worker,
                failure="budget",
                usage=usage,
                attempt=outcome.attempt,
                rails=outcome.rails,
            )
        return (
            structs.replace(outcome, cost_micro_usd=settlement.charged_micro_usd) if settlement else outcome
        )

    async def _run(self, request: TaskRequest) -> RoleResult:
        if not self.backend.serves(request.model):
            # The guard refuses such tasks; this worker may serve other models than the guard was told.
            error = f"this worker does not run the model {request.model!r} (MAESTRO_MODELS)"
            return RoleResult(ok=False, output="", usage=Usage(model="none"), error=error)
        meter = Metered(self.backend, Allowance.of(request, Prices.of(self.bus.settings)))
        try:
            seen = self.policies.current.as_seen_by(request.tenant)
            result = await RUNNERS[request.role](request, meter, self.sandbox, seen)
        except ModelFailed as exc:
            # The calls that were answered before this one are paid for; the one that failed charged nothing.
            failure: FailureKind = "error" if exc.retryable else "model_refused"
            error = f"model call failed: {exc}"
            return RoleResult(ok=False, output="", usage=meter.spent, error=error, failure=failure)
        except OverBudget as exc:
            # The next call could pass what was held for the task: not made, and a retry would do the same.
            error = f"model call not made: {exc}"
            return RoleResult(ok=False, output="", usage=meter.spent, error=error, failure="budget")
        except Exception as exc:
            # A redelivery would crash again on this input: the attempt fails, and the retry policy decides.
            context = {"task_id": request.id, "tenant": request.tenant}
            # Its text may quote what the model answered: logged only with every credential masked.
            shown = rails.masked_traceback(exc, self.policies.current.policy(request.tenant))
            log.error("role %s crashed: %s", request.role, shown, extra=context)
            error = f"role crashed: {exc!r}"
            return RoleResult(ok=False, output="", usage=meter.spent, error=error, failure="crash")
        # Every call the role made is charged, whatever the role itself reported.
        return dataclasses.replace(result, usage=meter.spent) if meter.spent.model != "none" else result

    async def _store(self, request: TaskRequest, files: list[ContextFile]) -> list[ArtifactRef]:
        async def put(file: ContextFile) -> ArtifactRef:
            name = f"{request.tenant}/{request.id}/{file.path}"
            info = await self.artifacts.put(name, file.content.encode())
            return ArtifactRef(name=name, size=info.size or 0, digest=info.digest or "")

        return list(await asyncio.gather(*(put(f) for f in files)))

    async def _commit(self, assignment: TaskAssignment, usage: Usage) -> Settlement | None:
        if not assignment.reservation_id:
            return None
        commit = Commit(
            tenant=assignment.request.tenant, reservation_id=assignment.reservation_id, usage=usage
        )
        return await self.bus.calls.request(topics.BUDGET_COMMIT, commit, key=commit.tenant)

    async def dead_letter(self, data: bytes, reason: str, subject: str) -> None:
        """An assignment that went to the DLQ is a failed attempt (a crash), with the reason: its hold is
        released, and the orchestrator retries the task or fails it, as for any failed attempt."""
        try:
            assignment = codec.decode(TaskAssignment, data)
        except codec.DecodeError:
            return
        request = assignment.request
        failed = AttemptFailed(
            task_id=request.id,
            tenant=request.tenant,
            at=datetime.now(UTC),
            error=bounded(reason),
            worker=self.bus.settings.worker,
            failure="crash",
            attempt=assignment.attempt,
        )
        await self._release(assignment)
        await self._keep_for_retry(assignment, failed.failure)
        await self.bus.streams.publish(
            topics.EVENTS.at(request.tenant, request.id),
            failed,
            msg_id=topics.event_msg_id(request.id, f"attempt-{assignment.attempt}"),
        )
        self.metrics.tasks.labels(request.role, "failed").inc()

    async def _keep_for_retry(self, assignment: TaskAssignment, failure: FailureKind) -> None:
        """Keep the assignment of a failed attempt the task will retry (topics.BUCKET_ATTEMPTS), where the
        orchestrator reads it to hand it out again; nothing when it will not be retried."""
        if attempts.retried(assignment, failure):
            keep = codec.encode(assignment)
            task_id = assignment.request.id
            await store_durably(
                "the assignment to retry", lambda: self.bus.streams.put(topics.BUCKET_ATTEMPTS, task_id, keep)
            )

    async def _release(self, assignment: TaskAssignment) -> None:
        """Give a task's hold back; when the budget cannot be reached, the hold expires after its ttl."""
        request = assignment.request
        if assignment.reservation_id:
            try:
                await self.bus.calls.request(
                    topics.BUDGET_RELEASE,
                    Release(tenant=request.tenant, reservation_id=assignment.reservation_id),
                    key=request.tenant,
                )
            except RemoteError as exc:
                context = {"task_id": request.id, "tenant": request.tenant}
                log.warning("could not release a failed task's hold: %s", exc, extra=context)


def consumer(role: Role) -> Consumer[TaskAssignment]:
    """The durable pull consumer every worker of `role` shares."""
    return Consumer(
        stream=topics.STREAM_TASKS,
        durable=topics.agents_durable(role),
        filter_subject=topics.TASKS.filter(role),
        type=TaskAssignment,
        origin=ORIGIN,
    )


async def open_worker(bus: Bus) -> Worker:
    """A worker on `bus` with the backend MAESTRO_BACKEND names, its metrics on the bus's registry."""
    return Worker(
        bus=bus,
        backend=open_backend(bus.settings, os.environ),
        # Raises IsolationError at start when the tester would run commands with no isolation unasked.
        sandbox=await open_sandbox(bus.settings, runs_untrusted="tester" in served_roles(bus.settings.roles)),
        artifacts=await bus.js.object_store(topics.STORE_ARTIFACTS),
        finished=await bus.js.key_value(topics.BUCKET_WORK),
        metrics=AgentMetrics.create(bus.metrics.registry),
        stops=await StopNotices.subscribed(bus.nc),
    )


async def serve(bus: Bus) -> None:
    """Serve every role in settings.roles from this one process until the bus stops."""
    await serve_with(bus, await open_worker(bus))


async def serve_with(bus: Bus, worker: Worker) -> None:
    """Serve every role in settings.roles with `worker` until the bus stops, under the bundle in force."""
    for stale in await asyncio.to_thread(remove_stale_workspaces):
        log.info("removed the workspace of a worker that is gone: %s", stale)
    roles = served_roles(bus.settings.roles)
    warm()  # the output rails judge every result with the policy families
    log.info("agent %s serving roles: %s", bus.settings.worker, ", ".join(roles))
    # Announced exactly while it takes their tasks: /readyz and `maestro up` name the roles nobody serves.
    slots = bus.settings.concurrency
    async with (
        closing(worker.backend),
        following(bus.js, worker.policies),
        announcing(bus, roles, bus.settings.worker, slots=slots),
        asyncio.TaskGroup() as group,
    ):
        for role in roles:
            group.create_task(
                bus.consumers.consume(consumer(role), worker.handle, on_dead_letter=worker.dead_letter)
            )


SERVICE = Service(name="agents", default_port=9103, serve=serve)
