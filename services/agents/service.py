"""The agent worker: pull each served role's tasks, do the work, store artifacts, pay, report the outcome."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from nats.js.object_store import ObjectStore

from maestro import codec, runtime, topics
from maestro.bus import Bus, Consumer, Delivery
from maestro.errors import RemoteError, Retry
from maestro.runtime import Service
from proto.v1 import (
    ROLES,
    ArtifactRef,
    Commit,
    ContextFile,
    Failed,
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
from services.agents.backends import Backend, OfflineBackend
from services.agents.heartbeat import heartbeats
from services.agents.metrics import AgentMetrics
from services.agents.roles import RUNNERS, RoleResult
from services.agents.sandbox import Sandbox

log = logging.getLogger(__name__)

OUTPUT_LIMIT = 64 * 1024
"""Most characters of output (or error) an outcome event carries; the rest is cut."""
ORIGIN = "agents"


def bounded(text: str, limit: int = OUTPUT_LIMIT) -> str:
    """`text` cut to `limit` characters, saying how much was cut."""
    if len(text) <= limit:
        return text
    note = f"\n[... cut: {len(text)} characters in all]"
    return text[: limit - len(note)] + note


def served_roles(names: tuple[str, ...]) -> list[Role]:
    """The known roles among `names`, in order, each once."""
    return [role for role in ROLES if role in names]


def outcome_event(
    request: TaskRequest,
    result: RoleResult,
    settlement: Settlement | None,
    artifacts: list[ArtifactRef],
    worker: str,
    attempt: int,
) -> Succeeded | Failed:
    """The event that ends a task: what the role produced, what it used, and what that cost."""
    cost = settlement.charged_micro_usd if settlement else 0
    now = datetime.now(UTC)
    if result.ok:
        return Succeeded(
            task_id=request.id,
            tenant=request.tenant,
            at=now,
            worker=worker,
            output=bounded(result.output),
            usage=result.usage,
            cost_micro_usd=cost,
            artifacts=artifacts,
            attempt=attempt,
        )
    return Failed(
        task_id=request.id,
        tenant=request.tenant,
        at=now,
        error=bounded(result.error or "failed"),
        worker=worker,
        usage=result.usage,
        cost_micro_usd=cost,
        attempt=attempt,
    )


@dataclass(frozen=True)
class Worker:
    """Everything a task needs, built once per process and shared by every role's consumer."""

    bus: Bus
    backend: Backend
    sandbox: Sandbox
    artifacts: ObjectStore
    metrics: AgentMetrics

    async def handle(self, assignment: TaskAssignment, delivery: Delivery) -> None:
        """Run one task to its outcome event; the bus acks once this returns.

        Raises Retry when the budget cannot be reached, so the whole task is redelivered later; a
        redelivered task commits to the same reservation (the budget answers already_settled) and
        publishes its outcome under the same msg id, so it never succeeds twice.
        """
        request = assignment.request
        settings = self.bus.settings
        started = time.perf_counter()
        subject = topics.EVENTS.subject(request.tenant, request.id)
        trace = delivery.traceparent
        attempt = delivery.attempt
        context = {"task_id": request.id, "tenant": request.tenant}

        await self.bus.publish(
            subject,
            Started(
                task_id=request.id,
                tenant=request.tenant,
                at=datetime.now(UTC),
                worker=settings.worker,
                attempt=attempt,
            ),
            msg_id=topics.event_msg_id(request.id, f"started-{attempt}"),
            traceparent=trace,
        )

        async def beat(n: int) -> None:
            event = Heartbeat(
                task_id=request.id,
                tenant=request.tenant,
                at=datetime.now(UTC),
                worker=settings.worker,
                attempt=attempt,
            )
            await self.bus.publish(subject, event, traceparent=trace)

        async with heartbeats(
            delivery.keepalive,
            beat,
            tick_s=min(settings.heartbeat_s, settings.ack_wait_s / 3),
            every_s=settings.heartbeat_s,
        ):
            result = await self._run(request)
            artifacts = await self._store(request, result.files) if result.ok and result.files else []
            try:
                settlement = await self._commit(assignment, result.usage)
            except RemoteError as exc:
                if exc.code < 500:
                    # The budget refuses this commit for good (say, an unknown reservation): retrying
                    # cannot help, and output that was not paid for is not delivered.
                    log.error("budget refused the commit: %s", exc, extra=context)
                    result = RoleResult(
                        ok=False, output="", usage=result.usage, error=f"budget refused the commit: {exc}"
                    )
                    settlement = None
                    await self._release(assignment)  # a failed task gives its hold back
                else:
                    log.warning("budget unavailable, retrying: %s", exc, extra=context)
                    self.metrics.tasks.labels(request.role, "retry").inc()
                    raise Retry(1.0, f"budget commit: {exc}") from None

        outcome = outcome_event(request, result, settlement, artifacts, settings.worker, attempt)
        await self.bus.publish(
            subject, outcome, msg_id=topics.event_msg_id(request.id, "outcome"), traceparent=trace
        )
        label = "succeeded" if result.ok else "failed"
        self.metrics.tasks.labels(request.role, label).inc()
        self.metrics.task_seconds.labels(request.role).observe(time.perf_counter() - started)
        if not result.ok:
            log.info("task failed: %s", result.error.splitlines()[0] if result.error else "", extra=context)

    async def _run(self, request: TaskRequest) -> RoleResult:
        try:
            return await RUNNERS[request.role](request, self.backend, self.sandbox)
        except Exception as exc:
            # A role that crashes on this input would crash again: the task fails instead of retrying.
            context = {"task_id": request.id, "tenant": request.tenant}
            log.exception("role %s crashed", request.role, extra=context)
            return RoleResult(ok=False, output="", usage=Usage(model="none"), error=f"role crashed: {exc!r}")

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
        return await self.bus.request(topics.BUDGET_COMMIT, commit, key=commit.tenant)

    async def dead_letter(self, data: bytes, reason: str, subject: str) -> None:
        """A task that went to the DLQ fails with the reason, and its budget hold is released."""
        try:
            assignment = codec.decode(TaskAssignment, data)
        except codec.DecodeError:
            return
        request = assignment.request
        failed = Failed(
            task_id=request.id,
            tenant=request.tenant,
            at=datetime.now(UTC),
            error=bounded(reason),
            worker=self.bus.settings.worker,
        )
        await self.bus.publish(
            topics.EVENTS.subject(request.tenant, request.id),
            failed,
            msg_id=topics.event_msg_id(request.id, "outcome"),
        )
        self.metrics.tasks.labels(request.role, "failed").inc()
        await self._release(assignment)

    async def _release(self, assignment: TaskAssignment) -> None:
        """Give a task's hold back; when the budget cannot be reached, the hold expires after its ttl."""
        request = assignment.request
        if assignment.reservation_id:
            try:
                await self.bus.request(
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
        filter_subject=topics.TASKS.subject(role),
        type=TaskAssignment,
        origin=ORIGIN,
    )


async def open_worker(bus: Bus) -> Worker:
    """A worker on `bus` with the offline backend, its metrics on the bus's registry."""
    return Worker(
        bus=bus,
        backend=OfflineBackend(),
        sandbox=Sandbox(timeout_s=bus.settings.command_timeout_s),
        artifacts=await bus.js.object_store(topics.STORE_ARTIFACTS),
        metrics=AgentMetrics.create(bus.metrics.registry),
    )


async def serve(bus: Bus) -> None:
    """Serve every role in settings.roles from this one process until bus.stop()."""
    worker = await open_worker(bus)
    roles = served_roles(bus.settings.roles)
    log.info("agent %s serving roles: %s", bus.settings.worker, ", ".join(roles))
    async with asyncio.TaskGroup() as group:
        for role in roles:
            group.create_task(bus.consume(consumer(role), worker.handle, on_dead_letter=worker.dead_letter))


SERVICE = Service(name="agents", default_port=9103, serve=serve)


def main() -> None:
    """`python -m services.agents`."""
    runtime.main(SERVICE)
