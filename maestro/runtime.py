"""Run one service: logging, connect, provision, serve HTTP, serve the bus, drain on SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import ssl
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvloop
from aiohttp import web
from nats.aio.client import Client
from prometheus_client import CollectorRegistry

from maestro import instances, topology
from maestro.access import nats_config
from maestro.bus import Bus
from maestro.children import EXIT_CONFIG
from maestro.collector import settle_for_serving
from maestro.errors import CannotRun
from maestro.http import health_routes, serving_http
from maestro.logs import setup_logging
from maestro.metrics import Metrics
from maestro.settings import Settings, SettingsError
from maestro.unavailable import is_unavailable

log = logging.getLogger(__name__)

DEFAULT_URL = "nats://127.0.0.1:4222"
"""Where a NATS server listens unless told otherwise (the AsyncAPI document names it)."""


def resolve_nats_url(settings: Settings) -> instances.Found:
    """MAESTRO_NATS_URL, else the URL of a running `maestro up` (maestro/instances.py); raises
    instances.NotFound saying where it looked."""
    return instances.find(settings, Path.cwd())


class Unreachable(ConnectionError):
    """NATS could not be reached within the patience given."""


async def connect(settings: Settings, name: str, *, patience_s: float | None = None) -> Client:
    """Connect to NATS, retrying the first connection with backoff (forever, or raising Unreachable after
    `patience_s`), then reconnecting forever."""

    async def disconnected() -> None:
        if not (nc.is_draining or nc.is_closed):
            log.warning("disconnected from NATS")

    async def reconnected() -> None:
        log.warning("reconnected to NATS at %s", nc.connected_url.netloc if nc.connected_url else "?")

    async def error(exc: Exception) -> None:
        log.warning("NATS error: %r", exc)

    found = resolve_nats_url(settings)
    servers = [s.strip() for s in found.url.split(",") if s.strip()]
    nc = Client()
    # nats-py retries the first connection forever too (max_reconnect_attempts=-1); patience bounds it.
    connecting = nc.connect(
        **credentials(settings.nats_creds or found.creds),
        **secured(servers),
        servers=servers,
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=1,
        connect_timeout=2,
        disconnected_cb=disconnected,
        reconnected_cb=reconnected,
        error_cb=error,
        allow_reconnect=True,
        drain_timeout=5,
    )
    try:
        await asyncio.wait_for(connecting, patience_s)
    except TimeoutError:
        with contextlib.suppress(Exception):
            await nc.close()
        raise Unreachable(
            f"cannot reach NATS at {', '.join(servers)} ({found.how}): is Maestro running?"
        ) from None
    if secured(servers) and not nc._server_info.get("tls_required"):
        # nats-py starts TLS only when the server asks for it: a tls:// URL must not silently go without.
        await nc.close()
        raise CannotRun(
            f"NATS at {', '.join(servers)} ({found.how}) does not use TLS, as a tls:// URL requires"
        )
    return nc


def credentials(path: str | None) -> dict[str, Any]:
    """nats-py's connect options for a credentials file (maestro nats-config's seed files): the seed, and
    the reply inbox its permissions give it; none without a file. Raises CannotRun when it cannot be read."""
    if not path:
        return {}
    try:
        who = nats_config.read_identity(Path(path))
    except nats_config.CredentialsError as exc:
        raise CannotRun(f"MAESTRO_NATS_CREDS: {exc}") from None
    return {"nkeys_seed_str": who.seed, "inbox_prefix": who.inbox_prefix}


def secured(servers: list[str]) -> dict[str, Any]:
    """nats-py's connect options for these URLs: with `tls://`, a TLS context that checks the server's
    certificate against the system's authorities (SSL_CERT_FILE names another bundle). nats-py starts TLS
    when the server asks for it (a server with a `tls` block does); connect() refuses one that does not."""
    if any(url.startswith("tls://") for url in servers):
        return {"tls": ssl.create_default_context()}
    return {}


@asynccontextmanager
async def open_bus(
    settings: Settings,
    name: str,
    registry: CollectorRegistry | None = None,
    *,
    patience_s: float | None = None,
) -> AsyncIterator[Bus]:
    """A connected Bus on a provisioned server; drains the connection when the block ends."""
    nc = await connect(settings, name, patience_s=patience_s)
    try:
        bus = Bus.over(nc, settings, Metrics.create(registry or CollectorRegistry()))
        await topology.ensure(bus.js, settings)
        yield bus
    finally:
        with contextlib.suppress(Exception):
            await nc.drain()


@dataclass(frozen=True)
class Service:
    """How to run one service: its name, default HTTP port, what it serves, and any extra HTTP routes."""

    name: str
    default_port: int
    serve: Callable[[Bus], Coroutine[Any, Any, None]]
    routes: Callable[[Bus], Iterable[web.RouteDef]] = field(default=lambda _: ())


async def ready(bus: Bus) -> bool:
    """Whether a service on `bus` can work: connected, with every stream and bucket provisioned."""
    return bus.nc.is_connected and await topology.is_provisioned(bus.js)


RESTART_MAX_S = 10.0
"""The longest wait before a service starts again after NATS ended a run (the backoff doubles from 0.5 s)."""
STEADY_S = 60.0
"""A run that lasted this long before NATS ended it starts the backoff afresh."""


async def run_service(
    service: Service,
    settings: Settings,
    *,
    stop: asyncio.Event | None = None,
    close_intake: asyncio.Event | None = None,
) -> None:
    """Run `service` until `stop` is set (or SIGTERM/SIGINT): serve, then finish in-flight work and drain.

    Once `close_intake` is set (SIGUSR1: `maestro up` is draining), the service takes no new work from
    outside but goes on with what it has. A run that NATS ends (a read at start-up that timed out on a loaded
    server, say: maestro/unavailable.py) starts again after a backoff, with a fresh connection and on the same
    HTTP port, as a restarted process would, but without the wait for one; anything else ends the service.
    """
    stop = stop or asyncio.Event()
    close_intake = close_intake or asyncio.Event()
    binding = _Binding(service.default_port if settings.http_port < 0 else settings.http_port)
    failures = 0
    while True:
        began = time.monotonic()
        try:
            await _run_once(service, settings, binding, stop, close_intake)
            return
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            if stop.is_set():
                # Told to stop while NATS did not answer (a start-up read on a loaded server, say): it stops
                # as asked; what it held is redelivered to whoever runs next.
                log.warning("%s: NATS did not answer (%r) as it stopped", service.name, exc)
                return
            failures = 1 if time.monotonic() - began >= STEADY_S else failures + 1
            delay = min(0.5 * 2 ** (failures - 1), RESTART_MAX_S)
            log.warning("%s: NATS did not answer (%r); starting again in %.1f s", service.name, exc, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            if stop.is_set():
                return


@dataclass
class _Binding:
    """The HTTP port a service serves on: as configured, then the one bound, which a restarted run keeps."""

    port: int


async def _run_once(
    service: Service,
    settings: Settings,
    binding: _Binding,
    stop: asyncio.Event,
    close_intake: asyncio.Event,
) -> None:
    registry = CollectorRegistry()
    async with open_bus(settings, f"maestro-{service.name}", registry) as bus:
        routes = [*health_routes(registry, functools.partial(ready, bus)), *service.routes(bus)]
        async with serving_http(
            settings.http_host,
            binding.port,
            routes,
            client_max_size=settings.max_request_bytes + 65536,
            service=service.name,
        ) as bound:
            binding.port = bound
            log.info(
                "%s serving on http://%s:%d (pid %d)", service.name, settings.http_host, bound, os.getpid()
            )
            serving = asyncio.create_task(service.serve(bus), name=service.name)
            stopped = asyncio.create_task(stop.wait())
            closing = asyncio.create_task(_close_intake_when(close_intake, bus))
            await asyncio.wait({serving, stopped}, return_when=asyncio.FIRST_COMPLETED)
            closing.cancel()
            stopped.cancel()
            bus.lifetime.stop()
            # A serve that ended by itself is not waited on: its own TimeoutError is not a drain that overran.
            await asyncio.wait({serving}, timeout=max(settings.ack_wait_s, 10.0))
            if not serving.done():
                log.warning("%s: in-flight work did not finish in time; it will be redelivered", service.name)
                serving.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await serving
            elif not serving.cancelled() and serving.exception() is not None:
                raise serving.exception()  # type: ignore[misc]
        log.info("%s stopped", service.name)


async def _close_intake_when(close_intake: asyncio.Event, bus: Bus) -> None:
    await close_intake.wait()
    log.info("intake closed: no new work is taken")
    bus.lifetime.close_intake()


def main(service: Service, environ: dict[str, str] | None = None) -> None:
    """The entry point of `python -m services.<name>`: read and check settings, log JSON, run until
    signalled. Settings it cannot run with (or a host it cannot run on: CannotRun) end it at once: one line on
    stderr, exit code EXIT_CONFIG."""
    try:
        settings = Settings.from_env(environ if environ is not None else dict(os.environ))
    except SettingsError as exc:
        print(f"maestro-{service.name}: error: {exc}", file=sys.stderr, flush=True)
        sys.exit(EXIT_CONFIG)
    setup_logging(settings.log_level)

    async def _main() -> None:
        stop, close_intake = asyncio.Event(), asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGUSR1, close_intake.set)
        await run_service(service, settings, stop=stop, close_intake=close_intake)

    settle_for_serving()
    # uvloop: measured 1,151 -> 1,374 tasks/s through the whole pipeline (bench/pipeline, 2 cores).
    try:
        uvloop.run(_main())
    except* CannotRun as group:
        print(f"maestro-{service.name}: error: {group.exceptions[0]}", file=sys.stderr, flush=True)
        sys.exit(EXIT_CONFIG)


@asynccontextmanager
async def running_service(service: Service, settings: Settings) -> AsyncIterator[asyncio.Task[None]]:
    """Run a service in this process for the length of a block (tests, benchmarks); stops and drains after."""
    stop = asyncio.Event()
    task = asyncio.create_task(run_service(service, settings, stop=stop), name=f"run-{service.name}")
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)
