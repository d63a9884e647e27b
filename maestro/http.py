"""Every service's HTTP face: /healthz, /readyz and /metrics, plus any routes the service adds."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

ReadyCheck = Callable[[], Awaitable[bool]]


def health_routes(registry: CollectorRegistry, ready: ReadyCheck) -> list[web.RouteDef]:
    """Liveness (the process answers), readiness (`ready()` is true) and the Prometheus exposition."""

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        if await ready():
            return web.json_response({"status": "ready"})
        return web.json_response({"status": "not ready"}, status=503)

    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    return [web.get("/healthz", healthz), web.get("/readyz", readyz), web.get("/metrics", metrics)]


@asynccontextmanager
async def serving_http(
    host: str,
    port: int,
    routes: Iterable[web.RouteDef],
    *,
    client_max_size: int = 1024**2,
) -> AsyncIterator[int]:
    """Serve `routes` on host:port (0 = a free port) while the block runs; yields the bound port."""
    app = web.Application(client_max_size=client_max_size)
    app.add_routes(list(routes))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    try:
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        bound = sockets[0].getsockname()[1] if sockets else port
        yield bound
    finally:
        await runner.cleanup()
