"""The HTTP API: submit a task, read its record, read its events. Every answer, errors included, is JSON."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from aiohttp import web
from msgspec import Meta, inspect
from nats.errors import Error as NatsError

from maestro import claims, codec, history, runtime, topics, tracing
from maestro.bus import Bus
from maestro.cancel import AlreadyEnded, cancel
from maestro.client import publish_request
from maestro.errors import Retry
from maestro.http import error, index_route, readyz_route
from maestro.presence import PresenceView, roles_without_worker
from proto.v1 import ApprovalDecision, TaskRecord, TaskRequest
from proto.v1.ids import ROLES, TOKEN_PATTERN
from services.orchestrator.store import TaskStore

log = logging.getLogger(__name__)

_TASK_ID = re.compile(TOKEN_PATTERN)
# msgspec names the path of a bad value ("... - at `$.context[0]`") and a missing field by name.
_AT_PATH = re.compile(r" - at `(\$[^`]*)`$")
_NAMED = re.compile(r"(?:missing required|unknown) field `([^`]+)`")
_STEP = re.compile(r"\.([^.\[]+)|\[([^\]]*)\]")


def field_of(type_: Any, message: str) -> str:
    """The JSON path a decode error of `type_` is about (`$.role`), or `$` when it is about the whole body.

    msgspec points a rule checked on a whole struct (its __post_init__) at the struct; when the message
    begins by naming one of the struct's fields ("data_region 'mars' is ...", "context path '/x' is ..."),
    the path goes on to that field.
    """
    at = _AT_PATH.search(message)
    path = at.group(1) if at else "$"
    missing = _NAMED.search(message)
    if missing:
        return f"{path}.{missing.group(1)}"
    struct = _struct_at(inspect.type_info(type_), path)
    if isinstance(struct, inspect.StructType):
        names = {f.encode_name for f in struct.fields}
        leading = [word.strip("`'\"") for word in message.split()[:2]]
        named = [word for word in leading if word in names]
        if len(named) == 1:
            return f"{path}.{named[0]}"
    return path


def _struct_at(info: inspect.Type, path: str) -> inspect.Type | None:
    """The type a JSON path (`$.context[0]`, `$.labels[...]`) leads to in `info`; None if it leads nowhere."""
    for name, _index in _STEP.findall(path[1:]):
        while isinstance(info, inspect.Metadata):
            info = info.type
        if isinstance(info, inspect.UnionType):
            inner = [t for t in info.types if not isinstance(t, inspect.NoneType)]
            if len(inner) != 1:
                return None
            info = inner[0]
        match info:
            case inspect.StructType(fields=fields) if name:
                found = [f.type for f in fields if f.encode_name == name]
                if not found:
                    return None
                info = found[0]
            case inspect.ListType(item_type=item) | inspect.VarTupleType(item_type=item) if not name:
                info = item
            case inspect.DictType(value_type=value) if not name:
                info = value
            case _:
                return None
    while isinstance(info, inspect.Metadata):
        info = info.type
    return info


class _DecisionBody(msgspec.Struct):
    """The body of POST /v1/tasks/{id}/approve|reject|cancel: who and why (a rejection needs a reason)."""

    by: Annotated[str, Meta(max_length=256)] = ""
    reason: Annotated[str, Meta(max_length=4096)] = ""


def _json(body: bytes, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, content_type="application/json")


def _task_id(request: web.Request) -> str | web.Response:
    task_id = request.match_info["id"]
    if not _TASK_ID.match(task_id):
        return error(400, f"not a valid task id (expected {TOKEN_PATTERN})", field="id")
    return task_id


def routes(bus: Bus) -> list[web.RouteDef]:
    """The API's routes: POST /v1/tasks, GET /v1/tasks/{id}[/events], POST .../approve|reject|cancel."""
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
        return (
            f"no running agent serves the {role} role yet: once allowed, the task waits, its budget held, "
            "until one starts"
        )

    async def submit(request: web.Request) -> web.StreamResponse:
        if not bus.accepting:
            return error(503, "Maestro is stopping and takes no new tasks; submit again once it is back")
        if request.content_length is not None and request.content_length > limit:
            return error(413, f"request is {request.content_length} bytes; the limit is {limit}")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return error(413, f"request is over the limit of {limit} bytes")
        if len(body) > limit:
            return error(413, f"request is {len(body)} bytes; the limit is {limit}")
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

    async def get_events(request: web.Request) -> web.StreamResponse:
        task_id = _task_id(request)
        if isinstance(task_id, web.Response):
            return task_id
        events = await history.read_events(bus.js, task_id)
        if not events:
            return error(404, f"no events for task {task_id}")
        return _json(codec.encode(events))

    async def decide(request: web.Request, approved: bool) -> web.StreamResponse:
        task_id = _task_id(request)
        if isinstance(task_id, web.Response):
            return task_id
        raw = await request.read()
        try:
            body = codec.decode_strict(_DecisionBody, raw) if raw.strip() else _DecisionBody()
        except codec.DecodeError as exc:
            return error(400, f"invalid decision: {exc}", field=field_of(_DecisionBody, str(exc)))
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
        ack = await bus.publish(
            topics.APPROVALS.subject(record.tenant),
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
        raw = await request.read()
        try:
            body = codec.decode_strict(_DecisionBody, raw) if raw.strip() else _DecisionBody()
        except codec.DecodeError as exc:
            return error(400, f"invalid cancellation: {exc}", field=field_of(_DecisionBody, str(exc)))
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
        web.get("/v1/tasks/{id}", get_task, allow_head=False),
        web.get("/v1/tasks/{id}/events", get_events, allow_head=False),
        web.post("/v1/tasks/{id}/approve", approve),
        web.post("/v1/tasks/{id}/reject", reject),
        web.post("/v1/tasks/{id}/cancel", cancel_task),
    ]
