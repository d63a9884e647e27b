"""The HTTP API: submit a task, list tasks, read one's record, read or follow its events. Every answer, errors
included, is JSON, except a followed task's events, which are Server-Sent Events."""

from __future__ import annotations

import contextlib
import logging
import re
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import ConsumerConfig, DeliverPolicy

from maestro import claims, codec, history, listing, runtime, topics, tracing
from maestro.bus import Bus
from maestro.cancel import AlreadyEnded, cancel
from maestro.client import publish_request
from maestro.errors import Retry
from maestro.http import error, index_route, limited_body, readyz_route
from maestro.presence import PresenceView, roles_without_worker, unserved_warning
from proto.v1 import (
    ENDING_EVENTS,
    ApprovalDecision,
    TaskEvent,
    TaskRecord,
    TaskRequest,
)
from proto.v1.ids import ROLES, TOKEN_PATTERN
from services.orchestrator.bodies import actor_of, field_of
from services.orchestrator.store import TaskStore
from services.orchestrator.workflows.api import workflow_routes

log = logging.getLogger(__name__)

_TASK_ID = re.compile(TOKEN_PATTERN)
KEEPALIVE_S = 5.0
"""How long a followed task's stream stays silent before a comment line: how soon a client that went away,
or a server that is stopping, ends the stream."""


def _json(body: bytes, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, content_type="application/json")


def _task_id(request: web.Request) -> str | web.Response:
    task_id = request.match_info["id"]
    if not _TASK_ID.match(task_id):
        return error(400, f"not a valid task id (expected {TOKEN_PATTERN})", field="id")
    return task_id


def routes(bus: Bus) -> list[web.RouteDef]:
    """The API's routes: POST and GET /v1/tasks, GET /v1/tasks/{id}[/events], POST .../approve|reject|cancel
    (and the workflows')."""
    store = TaskStore(bus)
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

    async def submit(request: web.Request) -> web.StreamResponse:
        if not bus.lifetime.accepting:
            return error(503, "Maestro is stopping and takes no new tasks; submit again once it is back")
        body = await limited_body(request, limit)
        if isinstance(body, web.Response):
            return body
        try:
            task = codec.decode_strict(TaskRequest, body)
        except codec.DecodeError as exc:
            return error(400, f"invalid task request: {exc}", field=field_of(TaskRequest, str(exc)))
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
                request.headers.get(topics.HEADER_TRACEPARENT) or tracing.new_traceparent(),
            )
        except claims.IdConflict as exc:
            return error(409, str(exc), field="$.id")
        except Retry as exc:
            return error(503, f"{exc}; try again")
        except Exception as exc:
            log.warning("could not queue request: %r", exc, extra={"task_id": task.id, "tenant": task.tenant})
            return error(503, "could not queue the request; try again")
        answer = {"id": task.id, "tenant": task.tenant}
        if warning := await unserved(task.role):
            answer["warning"] = warning
        return web.json_response(answer, status=202)

    async def get_task(request: web.Request) -> web.StreamResponse:
        task_id = _task_id(request)
        if isinstance(task_id, web.Response):
            return task_id
        record = await store.read(task_id)
        if record is None:
            return error(404, f"no task {task_id}")
        return _json(record)

    async def list_tasks(request: web.Request) -> web.StreamResponse:
        try:
            query = listing.parse(listing.TASKS, request.query.items())
            page = await store.scan(query)
        except listing.BadParameter as exc:
            return error(400, str(exc), field=exc.field)
        except listing.TooMany as exc:
            return error(503, str(exc))
        return _json(codec.encode(page))

    async def get_events(request: web.Request) -> web.StreamResponse:
        task_id = _task_id(request)
        if isinstance(task_id, web.Response):
            return task_id
        follow = request.query.get("follow", "0")
        if follow not in ("0", "1"):
            return error(400, f"follow is 1 or 0, not {follow!r}", field="follow")
        if follow == "1":
            return await follow_events(request, task_id)
        events = await history.read_events(bus.js, task_id)
        if not events:
            return error(404, f"no events for task {task_id}")
        return _json(codec.encode(events))

    async def follow_events(request: web.Request, task_id: str) -> web.StreamResponse:
        last_seen = request.headers.get("Last-Event-ID", "0")  # a reconnecting EventSource resumes after it
        if not last_seen.isdigit():
            return error(400, f"Last-Event-ID is a stream sequence, not {last_seen!r}", field="Last-Event-ID")
        if await claims.owner_of(bus, task_id) is None and await store.read(task_id) is None:
            return error(404, f"no task {task_id}")
        # An ordered push consumer: the stored events, then each new one as the server stores it, no polling.
        sub = await bus.js.subscribe(
            topics.EVENTS.where(task_id=task_id),
            stream=topics.STREAM_EVENTS,
            ordered_consumer=True,
            config=ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                opt_start_seq=int(last_seen) + 1,
                inactive_threshold=30.0,
            ),
        )
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        try:
            await response.prepare(request)
            while bus.lifetime.accepting:
                try:
                    msg = await sub.next_msg(timeout=KEEPALIVE_S)
                except NatsTimeout:
                    await response.write(b": keep-alive\n\n")  # fails once the client has gone
                    continue
                try:
                    event: TaskEvent = codec.decode(TaskEvent, msg.data)  # type: ignore[arg-type]
                except codec.DecodeError:
                    continue
                kind = type(event).__struct_config__.tag
                frame = f"id: {msg.metadata.sequence.stream}\nevent: {kind}\ndata: "
                await response.write(frame.encode() + codec.encode(event) + b"\n\n")
                if isinstance(event, ENDING_EVENTS):
                    break
            await response.write_eof()
        except ConnectionResetError:
            pass  # the client went away: nothing to answer
        finally:
            with contextlib.suppress(NatsError):
                await sub.unsubscribe()
        return response

    async def decide(request: web.Request, approved: bool) -> web.StreamResponse:
        task_id = _task_id(request)
        if isinstance(task_id, web.Response):
            return task_id
        body = await actor_of(request, "decision")
        if isinstance(body, web.Response):
            return body
        if not approved and not body.reason.strip():
            return error(400, "a rejection needs a reason", field="$.reason")
        stored = await store.read(task_id)
        if stored is None:
            return error(404, f"no task {task_id}")
        record = codec.decode(TaskRecord, stored)
        if record.state != "awaiting_approval":
            return error(409, f"task {task_id} is {record.state}, not awaiting approval", state=record.state)
        decision = ApprovalDecision(
            task_id=task_id,
            tenant=record.tenant,
            approved=approved,
            by=body.by or "api",
            reason=body.reason,
            at=datetime.now(UTC),
        )
        ack = await bus.streams.publish(
            topics.APPROVALS.at(record.tenant),
            decision,
            msg_id=topics.approval_msg_id(task_id, record.tenant),
            traceparent=request.headers.get(topics.HEADER_TRACEPARENT),
        )
        if ack.duplicate:
            return error(409, f"task {task_id} was decided already", state=record.state)
        return web.json_response(
            {"id": task_id, "tenant": record.tenant, "approved": approved, "by": decision.by}, status=202
        )

    async def cancel_task(request: web.Request) -> web.StreamResponse:
        task_id = _task_id(request)
        if isinstance(task_id, web.Response):
            return task_id
        body = await actor_of(request, "cancellation")
        if isinstance(body, web.Response):
            return body
        stored = await store.read(task_id)
        if stored is None:
            return error(404, f"no task {task_id}")
        record = codec.decode(TaskRecord, stored)
        try:
            event = await cancel(
                bus,
                record,
                by=body.by or "api",
                reason=body.reason,
                traceparent=request.headers.get(topics.HEADER_TRACEPARENT),
            )
        except AlreadyEnded as exc:
            return error(409, str(exc), state=exc.state)
        return web.json_response(
            {"id": task_id, "tenant": record.tenant, "cancelled": True, "by": event.by, "was": record.state},
            status=202,
        )

    async def approve(request: web.Request) -> web.StreamResponse:
        return await decide(request, approved=True)

    async def reject(request: web.Request) -> web.StreamResponse:
        return await decide(request, approved=False)

    # Any other method or path is a JSON 405 (with Allow) or 404, and a failure a JSON 500: maestro.http.
    return [
        index_route("orchestrator"),
        readyz_route(readiness),
        web.post("/v1/tasks", submit),
        web.get("/v1/tasks", list_tasks, allow_head=False),
        web.get("/v1/tasks/{id}", get_task, allow_head=False),
        web.get("/v1/tasks/{id}/events", get_events, allow_head=False),
        web.post("/v1/tasks/{id}/approve", approve),
        web.post("/v1/tasks/{id}/reject", reject),
        web.post("/v1/tasks/{id}/cancel", cancel_task),
        *workflow_routes(bus, store),
    ]
