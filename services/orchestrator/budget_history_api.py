"""GET /v1/budgets/{tenant}/history: a tenant's spend over time and the budget alerts that fired, from `since`
(maestro/since.py) until now (maestro/budget_history.py), for the console's Budgets page.

A tenant's token reads its own tenant's history with scope read; another tenant's answers 404, as a budget
that does not exist; an operator reads any.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from aiohttp import web
from nats.errors import Error as NatsError

from maestro import operations
from maestro.access.grants import Caller
from maestro.access.http_auth import Gate, forbidden
from maestro.budget_history import read_history
from maestro.bus import Bus
from maestro.http import error, json_answer, route
from services.orchestrator.bodies import only, since_of, tenant_of

log = logging.getLogger(__name__)


def budget_history_routes(bus: Bus, gate: Gate) -> list[web.RouteDef]:
    """GET /v1/budgets/{tenant}/history, behind the token gate."""

    async def get_history(request: web.Request, caller: Caller) -> web.StreamResponse:
        if refused := only(request, ("since",)):
            return refused
        tenant = tenant_of(request.match_info["tenant"], "tenant")
        if isinstance(tenant, web.Response):
            return tenant
        if not caller.sees(tenant):
            return error(404, f"no budget for tenant {tenant}")
        if not caller.may("read", tenant):
            return forbidden(caller, "read", tenant)
        now = datetime.now(UTC)
        since = since_of(request, now)
        if isinstance(since, web.Response):
            return since
        try:
            history = await read_history(bus.js, tenant, since, now)
        except (NatsError, TimeoutError) as exc:
            log.warning("could not read the budget events of %s: %r", tenant, exc, extra={"tenant": tenant})
            return error(503, f"could not read the budget history of {tenant}; try again")
        return json_answer(history)

    return [route(operations.GET_BUDGET_HISTORY, gate.guarded(get_history))]
