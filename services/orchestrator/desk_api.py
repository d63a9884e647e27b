"""The human-work routes of the orchestrator's HTTP API: a person's inbox, the work a task asks, claims,
completions and releases (maestro/desk/desk.py), and the people (maestro/desk/people.py).

A person acts as their token's subject, never as a name the body gives; with auth off (tests, loopback)
the body's `by` names them. Another tenant's task answers 404, as one that does not exist.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable

from aiohttp import web
from nats.errors import Error as NatsError

from maestro import operations
from maestro.access.grants import Caller
from maestro.access.http_auth import Gate, forbidden, not_operator
from maestro.bus import Bus
from maestro.desk.desk import Desk, DeskError, Work
from maestro.desk.people import PeopleStore
from maestro.http import error, json_answer, route
from proto.v1.api import ActionBody, CompleteBody, WorkView
from proto.v1.humans import Person
from proto.v1.ids import QUEUE_PATTERN
from services.orchestrator.bodies import actor_of, body_of, only, task_id_of

log = logging.getLogger(__name__)

_QUEUE = re.compile(QUEUE_PATTERN)


def desk_routes(bus: Bus, gate: Gate) -> list[web.RouteDef]:
    """The inbox, work, claim, release and complete routes, and the people's, behind the token gate."""
    people = PeopleStore(bus)
    desk = Desk(bus, people)
    limit = bus.settings.max_request_bytes

    def as_person(caller: Caller, by: str) -> Caller | web.Response:
        """The caller the desk acts as: the token's subject (a body's `by` may only repeat it)."""
        if caller.authenticated:
            if by and by != caller.subject:
                return error(403, f"this token acts as {caller.subject!r}, not {by!r}", field="$.by")
            return caller
        return Caller(by or caller.subject, caller.tenant, caller.scopes)

    async def acting(coroutine: Awaitable[object]) -> object:
        try:
            return await coroutine
        except DeskError as exc:
            return error(exc.status, str(exc))
        except (NatsError, TimeoutError) as exc:
            log.warning("human work not done: %r", exc)
            return error(503, "NATS did not answer in time; try again")

    async def changed(
        request: web.Request,
        caller: Caller,
        body: ActionBody | CompleteBody | web.Response,
        do: Callable[[Caller, str], Awaitable[object]],
    ) -> web.StreamResponse:
        """A claim, release or completion of the path's task, as the caller's person, answered as JSON."""
        found = task_id_of(request)
        if isinstance(found, web.Response):
            return found
        if isinstance(body, web.Response):
            return body
        who = as_person(caller, body.by)
        if isinstance(who, web.Response):
            return who
        done = await acting(do(who, found))
        return done if isinstance(done, web.Response) else json_answer(done)

    async def claim(request: web.Request, caller: Caller) -> web.StreamResponse:
        body = await actor_of(request, "claim", limit)
        return await changed(request, caller, body, desk.claim)

    async def release(request: web.Request, caller: Caller) -> web.StreamResponse:
        body = await actor_of(request, "release", limit)
        reason = "" if isinstance(body, web.Response) else body.reason
        return await changed(request, caller, body, lambda who, task: desk.release(who, task, reason))

    async def complete(request: web.Request, caller: Caller) -> web.StreamResponse:
        body = await body_of(request, CompleteBody, "completion", limit)
        answer = {} if isinstance(body, web.Response) else body.answer
        return await changed(request, caller, body, lambda who, task: desk.complete(who, task, answer))

    async def inbox(request: web.Request, caller: Caller) -> web.StreamResponse:
        if refused := only(request, ("queue",)):
            return refused
        queue = request.query.get("queue")
        if queue is not None and not _QUEUE.match(queue):
            return error(400, f"not a queue name (expected {QUEUE_PATTERN}): {queue[:64]!r}", field="queue")
        if not caller.may("work", caller.tenant):
            return forbidden(caller, "work", caller.tenant)
        found = await acting(desk.inbox(caller, queue))
        return found if isinstance(found, web.Response) else json_answer(found)

    async def work(request: web.Request, caller: Caller) -> web.StreamResponse:
        found = task_id_of(request)
        if isinstance(found, web.Response):
            return found
        got = await acting(desk.work(caller, found))
        if not isinstance(got, Work):
            return got  # type: ignore[return-value]
        record, assignment = got.record, got.assignment
        if not caller.may("work", record.tenant):
            return forbidden(caller, "work", record.tenant)
        if assignment is None:
            return json_answer(WorkView(record=record))
        findings = assignment.decision.violations
        return json_answer(WorkView(record=record, request=assignment.request, findings=findings))

    async def list_people(request: web.Request, caller: Caller) -> web.StreamResponse:
        if not any(caller.may(scope, caller.tenant) for scope in ("read", "work")):
            return forbidden(caller, "read", caller.tenant)
        return json_answer(await people.list())

    async def put_person(request: web.Request, caller: Caller) -> web.StreamResponse:
        if refused := not_operator(caller, "add or change people"):
            return refused
        person = await body_of(request, Person, "person", limit)
        if isinstance(person, web.Response):
            return person
        if person.id != request.match_info["id"]:
            path = request.match_info["id"]
            return error(400, f"the body names {person.id!r}, the path {path!r}", field="$.id")
        stored = await people.put(person)
        log.info("%s stored person %s", caller.subject, person.id)
        return json_answer(stored)

    async def remove_person(request: web.Request, caller: Caller) -> web.StreamResponse:
        if refused := not_operator(caller, "remove people"):
            return refused
        removed = await people.remove(request.match_info["id"])
        if removed is None:
            return error(404, f"no person {request.match_info['id']!r}")
        log.info("%s removed person %s", caller.subject, removed.id)
        return json_answer(removed)

    return [
        route(operations.CLAIM_TASK, gate.guarded(claim)),
        route(operations.RELEASE_TASK, gate.guarded(release)),
        route(operations.COMPLETE_TASK, gate.guarded(complete)),
        route(operations.LIST_INBOX, gate.guarded(inbox)),
        route(operations.GET_WORK, gate.guarded(work)),
        route(operations.LIST_PEOPLE, gate.guarded(list_people)),
        route(operations.PUT_PERSON, gate.guarded(put_person)),
        route(operations.REMOVE_PERSON, gate.guarded(remove_person)),
    ]
