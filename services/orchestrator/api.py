"""The HTTP API: submit a task, list tasks, read one's record, read or follow its events. Every answer, errors
included, is JSON, except a followed task's events, which are Server-Sent Events."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, NamedTuple

from aiohttp import web
from nats.errors import Error as NatsError

from maestro import claims, codec, history, listing, operations, runtime, topics, tracing
from maestro.access.grants import Caller
from maestro.access.http_auth import Gate, actor, forbidden, listing_for
from maestro.bus import Bus
from maestro.cancel import AlreadyEnded, cancel
from maestro.client import publish_request
from maestro.errors import Retry
from maestro.http import error, index_route, json_answer, readyz_route, route, traceparent
from maestro.presence import PresenceView, roles_without_worker, unserved_warning
from maestro.retry_now import NotWaiting, retry_now
from proto.v1 import (
    ApprovalDecision,
    TaskRecord,
    TaskRequest,
)
from proto.v1.access import Scope
from proto.v1.api import CancelAccepted, Decided, RetriedNow, Submitted
from proto.v1.ids import ROLES
from services.orchestrator.admin_api import admin_routes
from services.orchestrator.artifacts_api import artifact_routes
from services.orchestrator.bodies import actor_of, body_of, task_id_of
from services.orchestrator.budget_history_api import budget_history_routes
from services.orchestrator.console.routes import console_routes
from services.orchestrator.contract_api import contract_routes
from services.orchestrator.decisions_api import decision_routes
from services.orchestrator.desk_api import desk_routes
from services.orchestrator.event_stream import stream_events
from services.orchestrator.gates_api import gate_routes
from services.orchestrator.hooks_api import hook_routes
from services.orchestrator.identity_api import identity_routes
from services.orchestrator.live_api import last_event_id, live_routes
from services.orchestrator.store import TaskStore
from services.orchestrator.workflows.api import workflow_routes

log = logging.getLogger(__name__)


class Order(NamedTuple):
    """What a task action asks: of which task (its record), by whom, and why."""

    record: TaskRecord
    by: str
    reason: str


def routes(bus: Bus) -> list[web.RouteDef]:
    """The API's routes: POST and GET /v1/tasks, GET /v1/tasks/{id}[/events], POST .../approve|reject|cancel
    (and the workflows'), each behind the token gate."""
    store = TaskStore(bus)
    gate = Gate(bus)
    limit = bus.settings.max_request_bytes
    # Read on every submission: the bucket is listed at most once every two seconds, whatever the load.
    presence = PresenceView(bus, max_age_s=2.0)

    async def readiness() -> dict[str, Any] | None:
        # Ready means the orchestrator can take and track tasks. Roles without a worker are listed for the
        # operator (their tasks wait, accepted) but leave it ready: a probe would restart it for nothing.
        if not await runtime.ready(bus):
            return None
        try:
            return {"roles_without_worker": await roles_without_worker(bus, ROLES)}
        except (NatsError, TimeoutError) as exc:
            log.warning("could not read which roles have a worker: %r", exc)
            return None

    async def unserved(role: str) -> str | None:
        try:
            if not await presence.roles_without_worker([role]):
                return None
        except (NatsError, TimeoutError) as exc:  # the task is queued already: only the warning is lost
            log.warning("could not read which roles have a worker: %r", exc)
            return None
        return unserved_warning([role], "the task waits")

    async def record_for(caller: Caller, task_id: str) -> TaskRecord | web.Response:
        """The task's record when the caller may see it; else 404, the same as for a task that does not
        exist, so that another tenant's ids cannot be probed."""
        # The stored record lags the task's events by up to MAESTRO_RECORD_LINGER_S (the orchestrator writes
        # a task's first events together): until it is written, the events say what it holds.
        record = await store.record(task_id) or await history.folded(bus.js, task_id)
        if record is None or not caller.sees(record.tenant):
            return error(404, f"no task {task_id}")
        return record

    async def order_of(
        request: web.Request, caller: Caller, what: str, scope: Scope, *, unreasoned: str = ""
    ) -> Order | web.Response:
        """What a POST /v1/tasks/{id}/<action> asks of which task and by whom, or the answer to give
        instead: 400 for a bad id or body (or, saying `unreasoned`, for one without the reason it needs), 404,
        403 without `scope`."""
        task_id = task_id_of(request)
        if isinstance(task_id, web.Response):
            return task_id
        body = await actor_of(request, what, limit)
        if isinstance(body, web.Response):
            return body
        if unreasoned and not body.reason.strip():
            return error(400, unreasoned, field="$.reason")
        record = await record_for(caller, task_id)
        if isinstance(record, web.Response):
            return record
        by = actor(caller, scope, record.tenant, body.by)
        if isinstance(by, web.Response):
            return by
        return Order(record, by, body.reason)

    async def submit(request: web.Request, caller: Caller) -> web.StreamResponse:
        if not bus.lifetime.accepting:
            return error(503, "Maestro is stopping and takes no new tasks; submit again once it is back")
        task = await body_of(request, TaskRequest, "task request", limit)
        if isinstance(task, web.Response):
            return task
        if not caller.may("submit", task.tenant):
            return forbidden(caller, "submit", task.tenant)
        served = bus.settings.models
        if task.model is not None and task.model not in served:
            # The guard would deny it (models.not-served); here the caller hears it at once.
            refusal = f"no agent here runs the model {task.model!r}; served: {', '.join(served)}"
            return error(400, refusal, field="$.model")
        try:
            # Published again when the same request comes back (202 as the first time): the caller may be
            # retrying a submission whose publish never happened. The guard judges an id once.
            await publish_request(
                bus,
                task,
                # A trace starts here when the caller did not bring one.
                traceparent(request) or tracing.new_traceparent(),
            )
        except claims.IdConflict as exc:
            return error(409, str(exc), field="$.id")
        except Retry as exc:
            return error(503, f"{exc}; try again")
        except Exception as exc:
            log.warning("could not queue request: %r", exc, extra={"task_id": task.id, "tenant": task.tenant})
            return error(503, "could not queue the request; try again")
        answer = Submitted(id=task.id, tenant=task.tenant, warning=await unserved(task.role))
        return json_answer(answer, status=202)

    async def get_task(request: web.Request, caller: Caller) -> web.StreamResponse:
        task_id = task_id_of(request)
        if isinstance(task_id, web.Response):
            return task_id
        record = await record_for(caller, task_id)
        if isinstance(record, web.Response):
            return record
        if not caller.may("read", record.tenant):
            return forbidden(caller, "read", record.tenant)
        return json_answer(record)

    async def list_tasks(request: web.Request, caller: Caller) -> web.StreamResponse:
        try:
            query = listing_for(caller, listing.parse(listing.TASKS, request.query.items()))
            if isinstance(query, web.Response):
                return query
            page = await store.scan(query)
        except listing.BadParameter as exc:
            return error(400, str(exc), field=exc.field)
        except listing.TooMany as exc:
            return error(503, str(exc))
        return json_answer(page)

    async def get_events(request: web.Request, caller: Caller) -> web.StreamResponse:
        task_id = task_id_of(request)
        if isinstance(task_id, web.Response):
            return task_id
        follow = request.query.get("follow", "0")
        if follow not in ("0", "1"):
            return error(400, f"follow is 1 or 0, not {follow!r}", field="follow")
        # Checked whether or not the stream is followed: a header the API takes is never ignored when wrong.
        last_seen = last_event_id(request)  # a reconnecting EventSource resumes after it
        if isinstance(last_seen, web.Response):
            return last_seen
        if follow == "1":
            return await follow_events(request, caller, task_id, last_seen or 0)
        # Each event names its tenant: the caller sees its own tenant's only (a conflicting submission
        # from another tenant leaves a rejection under the same id, which is that tenant's).
        events = [e for e in await history.read_events(bus.js, task_id) if caller.sees(e.tenant)]
        if not events:
            return error(404, f"no events for task {task_id}")
        if not caller.may("read", events[0].tenant):
            return forbidden(caller, "read", events[0].tenant)
        return json_answer(events)

    async def follow_events(
        request: web.Request, caller: Caller, task_id: str, last_seen: int
    ) -> web.StreamResponse:
        claim = await claims.owner_of(bus, task_id)
        tenant = claim.tenant if claim is not None else None
        if tenant is None:
            record = await store.read(task_id)
            tenant = codec.decode(TaskRecord, record).tenant if record is not None else None
        if tenant is None or not caller.sees(tenant):
            return error(404, f"no task {task_id}")
        if not caller.may("read", tenant):
            return forbidden(caller, "read", tenant)
        # The stored events, then each new one as the server stores it, until the task ends.
        subject = topics.EVENTS.subject(tenant, task_id)
        return await stream_events(request, bus, [subject], after_seq=last_seen, until_end=True)

    async def decide(request: web.Request, caller: Caller, approved: bool) -> web.StreamResponse:
        unreasoned = "" if approved else "a rejection needs a reason"
        order = await order_of(request, caller, "decision", "approve", unreasoned=unreasoned)
        if isinstance(order, web.Response):
            return order
        record, by, reason = order
        task_id = record.id
        if record.state != "awaiting_approval":
            return error(409, f"task {task_id} is {record.state}, not awaiting approval", state=record.state)
        decision = ApprovalDecision(
            task_id=task_id,
            tenant=record.tenant,
            approved=approved,
            by=by,
            reason=reason,
            at=datetime.now(UTC),
        )
        ack = await bus.streams.publish(
            topics.APPROVALS.at(record.tenant),
            decision,
            msg_id=topics.approval_msg_id(task_id, record.tenant),
            traceparent=traceparent(request),
        )
        if ack.duplicate:
            return error(409, f"task {task_id} was decided already", state=record.state)
        return json_answer(
            Decided(id=task_id, tenant=record.tenant, approved=approved, by=decision.by), status=202
        )

    async def cancel_task(request: web.Request, caller: Caller) -> web.StreamResponse:
        order = await order_of(request, caller, "cancellation", "submit")
        if isinstance(order, web.Response):
            return order
        record, by, reason = order
        try:
            event = await cancel(bus, record, by=by, reason=reason, traceparent=traceparent(request))
        except AlreadyEnded as exc:
            return error(409, str(exc), state=exc.state)
        answer = CancelAccepted(
            id=record.id, tenant=record.tenant, cancelled=True, by=event.by, was=record.state
        )
        return json_answer(answer, status=202)

    async def retry_task(request: web.Request, caller: Caller) -> web.StreamResponse:
        order = await order_of(request, caller, "retry", "submit")
        if isinstance(order, web.Response):
            return order
        record, by, reason = order
        try:
            event = await retry_now(bus, record, by=by, reason=reason)
        except NotWaiting as exc:
            return error(409, str(exc), state=exc.state)
        was_due = record.next_retry_at or event.next_at
        answer = RetriedNow(id=record.id, tenant=record.tenant, attempt=event.attempt, by=by, was_due=was_due)
        return json_answer(answer, status=202)

    async def approve(request: web.Request, caller: Caller) -> web.StreamResponse:
        return await decide(request, caller, approved=True)

    async def reject(request: web.Request, caller: Caller) -> web.StreamResponse:
        return await decide(request, caller, approved=False)

    guarded = gate.guarded

    # Any other method or path is a JSON 405 (with Allow) or 404, and a failure a JSON 500: maestro.http.
    return [
        index_route("orchestrator"),
        readyz_route(readiness),
        route(operations.SUBMIT_TASK, guarded(submit)),
        route(operations.LIST_TASKS, guarded(list_tasks)),
        route(operations.GET_TASK, guarded(get_task)),
        route(operations.GET_TASK_EVENTS, guarded(get_events)),
        route(operations.APPROVE_TASK, guarded(approve)),
        route(operations.REJECT_TASK, guarded(reject)),
        route(operations.CANCEL_TASK, guarded(cancel_task)),
        route(operations.RETRY_TASK, guarded(retry_task)),
        *live_routes(bus, gate),
        *artifact_routes(bus, store, gate),
        *identity_routes(gate),
        *workflow_routes(bus, store, gate),
        *admin_routes(bus, gate),
        *budget_history_routes(bus, gate),
        *gate_routes(bus, gate),
        *decision_routes(bus, gate),
        *desk_routes(bus, gate),
        *contract_routes(),
        *console_routes(),
        *hook_routes(bus),
    ]
