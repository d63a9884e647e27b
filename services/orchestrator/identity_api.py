"""GET /v1/me: who the caller's token is, so that a client (the console) offers only what it may do."""

from __future__ import annotations

from aiohttp import web

from maestro import operations
from maestro.access.grants import Caller
from maestro.access.http_auth import Gate
from maestro.http import json_answer, route
from proto.v1.api import Identity


def identity_routes(gate: Gate) -> list[web.RouteDef]:
    """GET /v1/me behind the token gate: any valid token may ask about itself."""

    async def me(_: web.Request, caller: Caller) -> web.StreamResponse:
        return json_answer(
            Identity(
                subject=caller.subject,
                tenant=caller.tenant,
                scopes=sorted(caller.scopes),
                operator=caller.operator,
                auth=caller.authenticated,
            )
        )

    return [route(operations.GET_IDENTITY, gate.guarded(me))]
