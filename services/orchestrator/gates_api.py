"""The gates of the orchestrator's HTTP API: GET /v1/gates/deploy, what `maestro gate deploy` answers.

The answer is maestro/deploy_gate.py's, as the SDK and the CLI give it, recorded as a decision of the token's
subject. It is 200 whether the commit may be deployed or not (`allowed` says which): the question was
answered. A tenant's token asks about its own tenant (it may leave `tenant` out); an operator's token, which
acts in every tenant, must name one.
"""

from __future__ import annotations

import logging

from aiohttp import web
from nats.errors import Error as NatsError

from maestro import deploy_gate, gates, listing, operations
from maestro.access.grants import Caller
from maestro.access.http_auth import Gate, forbidden
from maestro.bus import Bus
from maestro.http import error, json_answer, route
from proto.v1.access import ALL_TENANTS

log = logging.getLogger(__name__)

_PARAMS = tuple(p.name for p in operations.DEPLOY_GATE.params)


def _problem(request: web.Request) -> web.Response | None:
    """400 for a parameter the route does not take, or one given twice: a misspelt `max_age` must not leave
    the default in force unnoticed."""
    for name in request.query:
        if name not in _PARAMS:
            return error(
                400, f"unknown query parameter {name!r} (this route takes: {', '.join(_PARAMS)})", field=name
            )
        if len(request.query.getall(name)) > 1:
            return error(400, f"{name} is given more than once", field=name)
    return None


def _ask(request: web.Request, caller: Caller) -> gates.Ask | web.Response:
    """The question in the query, for the tenant the caller names or acts in; or the 400 to answer."""
    query = request.query
    tenant = query.get("tenant") or (caller.tenant if caller.tenant != ALL_TENANTS else None)
    if tenant is None:
        return error(
            400, "a token of every tenant must say which tenant's tasks count: ?tenant=", field="tenant"
        )
    for name in ("repo", "commit"):
        if not query.get(name):
            return error(400, f"{name} is required", field=name)
    try:
        max_age_s = float(query.get("max_age_s", gates.DEFAULT_MAX_AGE_S))
    except ValueError:
        return error(
            400, f"max_age_s is a number of seconds, not {query['max_age_s'][:40]!r}", field="max_age_s"
        )
    try:
        return gates.Ask.checked(tenant, query["repo"], query["commit"], max_age_s)
    except gates.BadAsk as exc:
        return error(400, str(exc), field=exc.field)


def gate_routes(bus: Bus, gate: Gate) -> list[web.RouteDef]:
    """GET /v1/gates/deploy, behind the token gate."""

    async def deploy(request: web.Request, caller: Caller) -> web.StreamResponse:
        if refused := _problem(request):
            return refused
        ask = _ask(request, caller)
        if isinstance(ask, web.Response):
            return ask
        if not caller.may("read", ask.tenant):
            return forbidden(caller, "read", ask.tenant)
        try:
            decided = await deploy_gate.decide(bus, ask, by=caller.subject, via="http")
        except listing.TooMany as exc:
            return error(503, str(exc))
        except (NatsError, TimeoutError) as exc:
            log.warning("could not answer the deploy gate: %r", exc, extra={"tenant": ask.tenant})
            return error(503, "could not read the tasks or record the decision; try again")
        log.info(
            "deploy gate for %s at %s asked by %s: %s",
            ask.repo,
            ask.commit,
            caller.subject,
            decided.answer.outcome,
            extra={"tenant": ask.tenant, "task_id": decided.answer.task_id},
        )
        return json_answer(decided.answer)

    return [route(operations.DEPLOY_GATE, gate.guarded(deploy))]
