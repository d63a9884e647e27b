"""Reading a running Maestro for `maestro doctor`: every read at once, each failure kept as a fact.

The doctor connects as the other commands do (MAESTRO_NATS_URL, else the URL `maestro up` left in its data
dir; MAESTRO_NATS_CREDS, else the admin's credentials it left there) but never provisions: a missing stream
is what it reports, not something it mends on the way in.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import TypeVar

from nats.aio.client import ServerVersion
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import StreamInfo
from nats.js.errors import NotFoundError
from prometheus_client import CollectorRegistry

from maestro import codec, dead_letters, presence, scan, topics
from maestro.backlog import read_backlog, wanted_durables
from maestro.bus import Bus
from maestro.doctor.facts import (
    READ_CONSUMERS,
    READ_HOLDS,
    READ_LETTERS,
    READ_SERVICES,
    READ_STREAMS,
    READ_TASKS,
    READ_WORKERS,
    Facts,
    Letter,
    OverdueHold,
    Server,
    Unread,
)
from maestro.doctor.work import NEWEST_REASONS
from maestro.errors import MaestroError
from maestro.metrics import Metrics
from maestro.runtime import connect
from maestro.settings import Settings
from proto.v1 import TaskRecord

T = TypeVar("T")

HoldsReader = Callable[[JetStreamContext, float], Awaitable[list[OverdueHold]]]
"""Reads the holds past their ttl at a time (epoch seconds): the budget's, which owns the ledger's format."""

_OPEN = frozenset({"queued", "running"})


@asynccontextmanager
async def open_doctor_bus(settings: Settings) -> AsyncIterator[Bus]:
    """A bus on the server Maestro runs on, not provisioning anything; raises runtime.Unreachable when the
    server does not answer within the request time-out, instances.NotFound when nothing says where it is."""
    nc = await connect(settings, "maestro-doctor", patience_s=settings.request_timeout_s)
    try:
        yield Bus.over(nc, settings, Metrics.create(CollectorRegistry()))
    finally:
        with contextlib.suppress(Exception):
            await nc.drain()


async def gather(bus: Bus, holds: HoldsReader | None = None) -> Facts:
    """Read everything the checks judge, all at once; a read that fails is an Unread, not an error."""
    js, nc = bus.js, bus.nc
    url = nc.connected_url.geturl() if nc.connected_url else "?"
    unread: list[Unread] = []

    async def attempt(what: str, reading: Awaitable[T], empty: T) -> T:
        try:
            return await reading
        except NotFoundError:
            return empty  # its stream is missing: the streams check says so
        except (NatsError, TimeoutError, MaestroError, OSError) as exc:
            unread.append(Unread(what, str(exc) or type(exc).__name__))
            return empty

    try:
        await js.account_info()
        jetstream = True
    except (NatsError, TimeoutError):
        jetstream = False
    server = Server(url=url, version=_version(nc.connected_server_version), jetstream=jetstream)
    if not jetstream:
        return Facts(server=server, read_at=datetime.now(UTC))
    now = datetime.now(UTC)
    async with asyncio.TaskGroup() as group:
        streams = group.create_task(attempt(READ_STREAMS, _streams(js), {}))
        wanted = wanted_durables(bus.settings.roles, fair_dispatch=bus.settings.fair_dispatch)
        backlog = group.create_task(attempt(READ_CONSUMERS, read_backlog(js, wanted), None))
        letters = group.create_task(attempt(READ_LETTERS, _letters(js), ()))
        tasks = group.create_task(attempt(READ_TASKS, _open_tasks(js), ()))
        instances = group.create_task(attempt(READ_SERVICES, bus.discovery.stats(), []))
        served = group.create_task(attempt(READ_WORKERS, presence.roles_with_worker(bus), set[str]()))
        overdue = group.create_task(
            attempt(READ_HOLDS, holds(js, now.timestamp()), []) if holds else _nothing()
        )
    return Facts(
        server=server,
        read_at=now,
        streams=streams.result(),
        backlog=backlog.result(),
        letters=letters.result(),
        open_tasks=tasks.result(),
        holds=tuple(overdue.result()),
        services=tuple(instances.result()),
        served_roles=frozenset(served.result()),
        unread=tuple(unread),
    )


def _version(version: ServerVersion) -> str:
    try:
        return f"{version.major}.{version.minor}.{version.patch}" + (f"-{version.dev}" if version.dev else "")
    except ValueError:  # not semantic versioning: nats-py could not parse it
        return "unknown"


async def _nothing() -> list[OverdueHold]:
    return []


async def _streams(js: JetStreamContext) -> dict[str, StreamInfo]:
    return {str(info.config.name): info for info in await js.streams_info()}


async def _letters(js: JetStreamContext) -> tuple[Letter, ...]:
    newest = await dead_letters.latest(js, limit=NEWEST_REASONS)
    return tuple(Letter(s.seq, s.letter.origin, s.letter.reason, s.letter.at) for s in newest)


async def _open_tasks(js: JetStreamContext) -> tuple[TaskRecord, ...]:
    found = []
    async for value in scan.current_values(js, topics.BUCKET_TASKS):
        with contextlib.suppress(codec.DecodeError):
            record = codec.decode(TaskRecord, value)
            if record.state in _OPEN:
                found.append(record)
    return tuple(found)
