"""Helpers for the orchestrator's tests: run it on a port of its own, emit events, wait for records."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import aiohttp
from nats.js.errors import KeyNotFoundError, NotFoundError
from nats.js.kv import KeyValue

from maestro import codec, topics
from maestro.bus import Bus
from maestro.runtime import running_service
from maestro.settings import Settings
from proto.v1 import (
    Accepted,
    Decision,
    Heartbeat,
    Queued,
    Started,
    Succeeded,
    TaskEvent,
    TaskRecord,
    Usage,
)
from services.orchestrator.service import SERVICE


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def now() -> datetime:
    return datetime.now(UTC)


def lifecycle(task_id: str) -> list[TaskEvent]:
    """What guard and agent emit for a task that runs and succeeds."""
    return [
        Accepted(task_id=task_id, tenant="acme", at=now(), role="tester", labels={"pr": "7"}, model="m"),
        Queued(task_id=task_id, tenant="acme", at=now(), role="tester", decision=Decision(verdict="allow")),
        Started(task_id=task_id, tenant="acme", at=now(), worker="w-1"),
        Heartbeat(task_id=task_id, tenant="acme", at=now(), worker="w-1"),
        Succeeded(
            task_id=task_id,
            tenant="acme",
            at=now(),
            worker="w-1",
            output="exit 0",
            usage=Usage(model="m", input_tokens=3, output_tokens=4),
            cost_micro_usd=69,
        ),
    ]


async def emit(bus: Bus, event: TaskEvent) -> int:
    ack = await bus.streams.publish(topics.EVENTS.at(event.tenant, event.task_id), event)
    return ack.seq


async def wait_record(
    records: KeyValue, task_id: str, ready: Callable[[TaskRecord], bool], within: float = 10.0
) -> TaskRecord:
    """Poll the task's KV record until `ready(record)` holds; fails the test after `within` seconds."""
    last: TaskRecord | None = None
    async with asyncio.timeout(within):
        while True:
            try:
                entry = await records.get(task_id)
                if entry.value:
                    last = codec.decode(TaskRecord, entry.value)
                    if ready(last):
                        return last
            except KeyNotFoundError:
                pass
            await asyncio.sleep(0.02)
    raise AssertionError(f"never ready: {last}")  # pragma: no cover


async def wait_handled(bus: Bus, seq: int, within: float = 10.0) -> None:
    """Wait until the orchestrator's consumer has acknowledged every event up to stream sequence `seq`."""
    async with asyncio.timeout(within):
        while True:
            with contextlib.suppress(NotFoundError):  # the orchestrator has not created its consumer yet
                info = await bus.js.consumer_info(topics.STREAM_EVENTS, topics.DURABLE_ORCHESTRATOR)
                if info.ack_floor is not None and (info.ack_floor.stream_seq or 0) >= seq:
                    return
            await asyncio.sleep(0.02)


async def metric(port: int, name: str, label: str) -> float:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as resp:
        text = await resp.text()
    for line in text.splitlines():
        if line.startswith(f"{name}{{") and label in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@asynccontextmanager
async def orchestrator(settings: Settings) -> AsyncIterator[int]:
    """The orchestrator running in this process on a free port, once it answers /readyz; yields the port."""
    port = free_port()
    async with running_service(SERVICE, settings.with_(http_port=port)) as task:
        async with aiohttp.ClientSession() as http, asyncio.timeout(10):
            while True:
                if task.done():
                    task.result()  # it failed to start: show why
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"http://127.0.0.1:{port}/readyz") as resp:
                        if resp.status == 200:
                            break
                await asyncio.sleep(0.02)
        yield port
