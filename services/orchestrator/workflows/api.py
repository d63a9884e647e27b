"""The workflow routes of the orchestrator's HTTP API: submit, read, and pause, resume or cancel one."""

from __future__ import annotations

import re
from typing import Literal

from aiohttp import web

from maestro import claims, listing, operations, tracing
from maestro.access.grants import Caller
from maestro.access.http_auth import Gate, actor, forbidden, listing_for
from maestro.bus import Bus
from maestro.client import publish_workflow
from maestro.errors import NotFound
from maestro.http import error, json_answer, route, traceparent
from maestro.operations import Operation
from proto.v1.api import Submitted
from proto.v1.workflows import WORKFLOW_ID_PATTERN, Workflow, WorkflowControl, WorkflowRecord
from services.orchestrator.bodies import actor_of, body_of, field_of
from services.orchestrator.store import TaskStore
from services.orchestrator.workflows.runner import Ended, Runner

_WORKFLOW_ID = re.compile(WORKFLOW_ID_PATTERN)
# A DAG problem names its place in the definition first: `steps[2].needs[0]: no step is named 'x'`.
_DAG_PLACE = re.compile(r"^(steps(?:\[\d+\])?(?:\.[a-z_]+(?:\[\d+\])?)?)[: ]")


def _field(message: str) -> str:
    place = _DAG_PLACE.match(message)
    return f"$.{place.group(1)}" if place else field_of(Workflow, message)


def workflow_routes(bus: Bus, tasks: TaskStore, gate: Gate) -> list[web.RouteDef]:
    """POST and GET /v1/workflows, GET /v1/workflows/{id}, POST /v1/workflows/{id}/cancel|pause|resume, each
    behind the token gate."""
    runner = Runner(bus, tasks)
    limit = bus.settings.max_request_bytes

    async def record_for(caller: Caller, workflow_id: str) -> WorkflowRecord | web.Response:
        """The workflow's record when the caller may see it; else 404, as for one that does not exist."""
        if not _WORKFLOW_ID.match(workflow_id):
            return error(400, f"not a valid workflow id (expected {WORKFLOW_ID_PATTERN})", field="id")
        found = await runner.store.get(workflow_id)
        if found is None or not caller.sees(found[0].tenant):
            return error(404, f"no workflow {workflow_id}")
        return found[0]

    async def submit(request: web.Request, caller: Caller) -> web.StreamResponse:
        if not bus.lifetime.accepting:
            return error(503, "Maestro is stopping and takes no new workflows; submit again once it is back")
        workflow = await body_of(request, Workflow, "workflow", limit, place=_field)
        if isinstance(workflow, web.Response):
            return workflow
        if not caller.may("submit", workflow.tenant):
            return forbidden(caller, "submit", workflow.tenant)
        found = await runner.store.get(workflow.id)
        if found is not None and (
            found[0].tenant != workflow.tenant or found[0].digest != claims.digest(workflow)
        ):
            return error(409, f"workflow id {workflow.id} is taken by another workflow", field="$.id")
        await publish_workflow(bus, workflow, traceparent(request) or tracing.new_traceparent())
        return json_answer(Submitted(id=workflow.id, tenant=workflow.tenant), status=202)

    async def list_workflows(request: web.Request, caller: Caller) -> web.StreamResponse:
        try:
            query = listing_for(caller, listing.parse(listing.WORKFLOWS, request.query.items()))
            if isinstance(query, web.Response):
                return query
            page = await runner.store.scan(query)
        except listing.BadParameter as exc:
            return error(400, str(exc), field=exc.field)
        except listing.TooMany as exc:
            return error(503, str(exc))
        return json_answer(page)

    async def get_workflow(request: web.Request, caller: Caller) -> web.StreamResponse:
        record = await record_for(caller, request.match_info["id"])
        if isinstance(record, web.Response):
            return record
        if not caller.may("read", record.tenant):
            return forbidden(caller, "read", record.tenant)
        return json_answer(record)

    def control(operation: Operation, action: Literal["pause", "resume", "cancel"]) -> web.RouteDef:
        async def handle(request: web.Request, caller: Caller) -> web.StreamResponse:
            record = await record_for(caller, request.match_info["id"])
            if isinstance(record, web.Response):
                return record
            body = await actor_of(request, "body", limit)
            if isinstance(body, web.Response):
                return body
            by = actor(caller, "submit", record.tenant, body.by)
            if isinstance(by, web.Response):
                return by
            order = WorkflowControl(
                workflow_id=record.id,
                tenant=record.tenant,
                action=action,
                by=by,
                reason=body.reason,
            )
            try:
                return json_answer(await runner.control(order))
            except NotFound as exc:
                return error(404, str(exc))
            except Ended as exc:
                return error(409, str(exc), state=record.state)

        return route(operation, gate.guarded(handle))

    return [
        route(operations.SUBMIT_WORKFLOW, gate.guarded(submit)),
        route(operations.LIST_WORKFLOWS, gate.guarded(list_workflows)),
        route(operations.GET_WORKFLOW, gate.guarded(get_workflow)),
        control(operations.CANCEL_WORKFLOW, "cancel"),
        control(operations.PAUSE_WORKFLOW, "pause"),
        control(operations.RESUME_WORKFLOW, "resume"),
    ]
