"""GET /v1/events: every task event the caller may see, live, as Server-Sent Events (the console's pages
update from it), narrowed to a tenant, some tasks or some kinds."""

from __future__ import annotations

import msgspec
from aiohttp import web

from maestro import operations, topics
from maestro.access.grants import Caller
from maestro.access.http_auth import Gate, forbidden
from maestro.bus import Bus
from maestro.http import error, route
from proto.v1.access import ALL_TENANTS
from proto.v1.ids import TaskId
from proto.v1.tasks import EVENT_KINDS
from services.orchestrator.bodies import only, tenant_of
from services.orchestrator.event_stream import stream_events


def last_event_id(request: web.Request) -> int | web.Response | None:
    """The sequence after which a reconnecting client resumes (`Last-Event-ID`), None when it sent none, or
    the 400 to answer for one that is not a stream sequence."""
    given = request.headers.get("Last-Event-ID")
    if given is None:
        return None
    if not (given.isascii() and given.isdigit()):
        return error(400, f"Last-Event-ID is a stream sequence, not {given!r}", field="Last-Event-ID")
    return int(given)


def _subjects(tenant: str | None, tasks: list[str]) -> list[str] | web.Response:
    if tasks:
        if tenant is None:
            return error(400, "task needs tenant: a task's id is unique within its tenant", field="task")
        if len(tasks) > operations.MAX_FOLLOWED_TASKS:
            most = operations.MAX_FOLLOWED_TASKS
            return error(400, f"{len(tasks)} tasks; one stream follows at most {most}", field="task")
        for task in tasks:
            try:
                msgspec.convert(task, TaskId)
            except msgspec.ValidationError:
                return error(400, f"not a task id: {task[:80]!r}", field="task")
        return [topics.EVENTS.subject(tenant, task) for task in dict.fromkeys(tasks)]
    return [topics.EVENTS.filter(tenant)] if tenant is not None else [topics.EVENTS.all]


def live_routes(bus: Bus, gate: Gate) -> list[web.RouteDef]:
    """GET /v1/events behind the token gate."""

    async def follow(request: web.Request, caller: Caller) -> web.StreamResponse:
        if refused := only(request, ("tenant", "task", "kind")):
            return refused
        tenant: str | None = request.query.get("tenant")
        if tenant is not None and isinstance(checked := tenant_of(tenant, "tenant"), web.Response):
            return checked
        if caller.tenant != ALL_TENANTS:
            if tenant is not None and tenant != caller.tenant:
                return error(403, f"this token reads tenant {caller.tenant} only", field="tenant")
            tenant = caller.tenant
        if not caller.may("read", tenant or ALL_TENANTS):
            return forbidden(caller, "read", tenant or ALL_TENANTS)
        kinds = frozenset(request.query.getall("kind", []))
        if unknown := sorted(kinds - EVENT_KINDS):
            known = ", ".join(sorted(EVENT_KINDS))
            return error(400, f"no event kind {unknown[0]!r}; one of {known}", field="kind")
        subjects = _subjects(tenant, request.query.getall("task", []))
        if isinstance(subjects, web.Response):
            return subjects
        after = last_event_id(request)
        if isinstance(after, web.Response):
            return after
        return await stream_events(request, bus, subjects, after_seq=after, kinds=kinds)

    return [route(operations.FOLLOW_EVENTS, gate.guarded(follow))]
