"""The routes that describe the API: its OpenAPI document and the reference page rendered from it."""

from __future__ import annotations

from aiohttp import web

from maestro import codec, openapi, operations, reference
from maestro.http import route


def contract_routes() -> list[web.RouteDef]:
    """GET /openapi.json and GET /docs, both made once: the table they come from does not change while the
    orchestrator runs."""
    document = openapi.document()
    encoded = codec.encode(document)
    page = reference.page(document)

    async def get_openapi(_: web.Request) -> web.Response:
        return web.Response(body=encoded, content_type="application/json")

    async def get_reference(_: web.Request) -> web.Response:
        return web.Response(text=page, content_type="text/html", charset="utf-8")

    return [route(operations.GET_OPENAPI, get_openapi), route(operations.GET_REFERENCE, get_reference)]
