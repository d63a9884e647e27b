"""Every service's HTTP face: /healthz, /readyz, /metrics, a JSON index at /, and the service's own routes.

Every answer is JSON, errors included: `{"error": message, ...}`, where a request's fault names the `field`.
One middleware turns what aiohttp raises itself (404, 405 with `Allow`, 413 past `client_max_size`), a handler
that timed out (503: try again) and any other failure (500) into that shape, so no service writes error pages.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from importlib import metadata
from typing import Any

from aiohttp import hdrs, web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from maestro import codec, operations, topics, tracing
from maestro.operations import Operation
from proto.v1.api import ApiError, Health, Index

log = logging.getLogger(__name__)

ReadyCheck = Callable[[], Awaitable[bool]]
Readiness = Callable[[], Awaitable[Mapping[str, Any] | None]]
"""What /readyz adds to `{"status": "ready"}`, or None when the service is not ready."""
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error(
    status: int, message: str, /, *, headers: dict[str, str] | None = None, **more: Any
) -> web.Response:
    """A JSON error answer: the ApiError {"error": message, ...more}; `more` holds ApiError's other fields
    (a name it lacks is a TypeError: every error the API gives has the one documented shape)."""
    return json_answer(ApiError(error=message, **more), status=status, headers=headers)


def json_answer(body: object, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON answer of a Struct (or a list or dict of them), encoded as it is on the wire."""
    return web.Response(
        body=codec.encode(body), status=status, headers=headers, content_type="application/json"
    )


def traceparent(request: web.Request) -> str | None:
    """The request's W3C traceparent, or None when it has none or one that does not parse: W3C Trace Context
    drops a malformed one and restarts the trace, so it is neither passed on nor a reason to refuse."""
    given = request.headers.get(topics.HEADER_TRACEPARENT)
    return given if tracing.trace_id(given) is not None else None


def route(operation: Operation, handler: Handler) -> web.RouteDef:
    """The aiohttp route of one documented operation: its method and path, from maestro/operations.py, and
    no other (no HEAD beside a GET: the document does not offer one)."""
    if operation.method == hdrs.METH_GET:
        return web.get(operation.path, handler, allow_head=False)
    return web.route(operation.method, operation.path, handler)


async def limited_body(request: web.Request, limit: int) -> bytes | web.Response:
    """The request's body, or the JSON 413 to answer when it is over `limit` bytes."""
    if request.content_length is not None and request.content_length > limit:
        return error(413, f"request is {request.content_length} bytes; the limit is {limit}")
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return error(413, f"request is over the limit of {limit} bytes")
    if len(body) > limit:
        return error(413, f"request is {len(body)} bytes; the limit is {limit}")
    return body


def _message(request: web.Request, exc: web.HTTPException) -> str:
    match exc:
        case web.HTTPMethodNotAllowed(allowed_methods=allowed):
            return f"{request.method} is not allowed on {request.path}; it takes {', '.join(sorted(allowed))}"
        case web.HTTPNotFound():
            return f"no such endpoint: {request.method} {request.path}"
    # aiohttp's own text when it wrote one (413 names the limit), else the status's reason.
    default = f"{exc.status}: {exc.reason}"
    return exc.text if exc.text and exc.text != default else exc.reason


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer every error in JSON, keeping its status and headers (`Allow` on a 405)."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise  # a redirect is an answer, not an error
        kept = {k: v for k, v in exc.headers.items() if k not in (hdrs.CONTENT_TYPE, hdrs.CONTENT_LENGTH)}
        return error(exc.status, _message(request, exc), headers=kept)
    except TimeoutError:
        # What the handler waited on (NATS, mostly) was slow to answer: worth trying again, unlike a bug.
        log.warning("%s %s timed out", request.method, request.path)
        return error(503, "timed out; try again")
    except Exception:
        # The details are in the log, never in the answer: they may hold what a client must not see.
        log.exception("%s %s failed", request.method, request.path)
        return error(500, "internal error")


def package_version() -> str:
    """The installed maestro package's version (what / and the OpenAPI document name), or `unknown`."""
    try:
        return metadata.version("maestro")
    except metadata.PackageNotFoundError:  # pragma: no cover - run from a tree that was never installed
        return "unknown"


def index_route(service: str) -> web.RouteDef:
    """GET /: which service answers, its version, and every path it serves with the methods each takes."""
    version = package_version()

    async def index(request: web.Request) -> web.Response:
        links: dict[str, list[str]] = {}
        for resource in request.app.router.resources():
            path = resource.canonical
            if path != "/":
                links.setdefault(path, []).extend(route.method for route in resource)
        return json_answer(
            Index(service=service, version=version, links={p: sorted(m) for p, m in links.items()})
        )

    return route(operations.GET_INDEX, index)


def readyz_route(readiness: Readiness) -> web.RouteDef:
    """GET /readyz: 200 `{"status": "ready", **readiness()}`, or 503 when `readiness()` is None."""

    async def readyz(_: web.Request) -> web.Response:
        details = await readiness()
        if details is None:
            return error(
                503,
                "not ready: not connected to NATS, or its streams are not provisioned",
                status="not ready",
            )
        return web.json_response({"status": "ready", **details})

    return route(operations.GET_READINESS, readyz)


def health_routes(registry: CollectorRegistry, ready: ReadyCheck) -> list[web.RouteDef]:
    """Liveness (the process answers), readiness (`ready()` is true) and the Prometheus exposition."""

    async def healthz(_: web.Request) -> web.Response:
        return json_answer(Health(status="ok"))

    async def readiness() -> Mapping[str, Any] | None:
        return {} if await ready() else None

    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    return [
        route(operations.GET_HEALTH, healthz),
        readyz_route(readiness),
        route(operations.GET_METRICS, metrics),
    ]


@asynccontextmanager
async def serving_http(
    host: str,
    port: int,
    routes: Iterable[web.RouteDef],
    *,
    client_max_size: int = 1024**2,
    service: str = "maestro",
) -> AsyncIterator[int]:
    """Serve `routes` on host:port (0 = a free port) while the block runs; yields the bound port.

    GET / answers an index naming `service`. A route replaces an earlier one of the same method and path, so
    a service may answer / or /readyz with more than the shared routes do.
    """
    chosen = {(r.method, r.path): r for r in (index_route(service), *routes)}
    app = web.Application(client_max_size=client_max_size, middlewares=[json_errors])
    app.add_routes(list(chosen.values()))
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
