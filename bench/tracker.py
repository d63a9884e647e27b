"""What the harness sees of the tasks it submits: when each went in, when its Succeeded event and its
succeeded record arrived, and (when asked) the first event of every kind, read from core NATS callbacks;
and the records' states read back from their bucket at the end."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from nats.aio.msg import Msg

from maestro import codec, scan, topics
from maestro.bus import Bus
from proto.v1 import GetLedger, LedgerView

_KIND = b'{"kind":"task.'
_SUCCEEDED = b'"kind":"task.succeeded"'
_ENDED_BADLY = (b'"kind":"task.failed"', b'"kind":"task.rejected"', b'"kind":"task.timed_out"')
_RECORD_SUCCEEDED = b'"state":"succeeded"'
KV_PREFIX = f"$KV.{topics.BUCKET_TASKS}."
"""The subjects of the task bucket's writes (the tracker's on_record subscribes to KV_PREFIX + ">")."""


@dataclass
class Tracker:
    """What the harness saw of each task it submitted: when it went in, succeeded, and was recorded."""

    submitted: dict[str, float] = field(default_factory=dict)
    succeeded: dict[str, float] = field(default_factory=dict)
    recorded: dict[str, float] = field(default_factory=dict)
    ended_badly: dict[str, bytes] = field(default_factory=dict)
    seen: dict[str, dict[str, float]] = field(default_factory=dict)
    """When the first event of each kind arrived, per task (kept only when `stages` is set)."""
    stages: bool = False
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    # Core NATS callbacks: a byte search instead of a decode keeps the harness off the services' CPU.
    async def on_event(self, msg: Msg) -> None:
        """A lifecycle event on maestro.v1.evt.>."""
        task_id = msg.subject.rsplit(".", 1)[1]
        if task_id not in self.submitted:
            return
        if self.stages and msg.data.startswith(_KIND):
            kind = msg.data[len(_KIND) : msg.data.index(b'"', len(_KIND))].decode()
            self.seen.setdefault(kind, {}).setdefault(task_id, time.perf_counter())
        if _SUCCEEDED in msg.data:
            self.succeeded.setdefault(task_id, time.perf_counter())
            self.changed.set()
        elif any(kind in msg.data for kind in _ENDED_BADLY):
            self.ended_badly[task_id] = msg.data
            self.changed.set()

    async def on_record(self, msg: Msg) -> None:
        """A write to the task bucket."""
        task_id = msg.subject[len(KV_PREFIX) :]
        if task_id in self.submitted and _RECORD_SUCCEEDED in msg.data:
            self.recorded.setdefault(task_id, time.perf_counter())
            self.changed.set()

    def done(self) -> bool:
        """Every submitted task succeeded and is recorded as succeeded."""
        n = len(self.submitted)
        return len(self.succeeded) == n and len(self.recorded) == n

    def unfinished(self) -> list[str]:
        """Submitted tasks with no Succeeded event yet."""
        return [t for t in self.submitted if t not in self.succeeded]

    def unrecorded(self) -> list[str]:
        """Submitted tasks whose record does not read succeeded yet."""
        return [t for t in self.submitted if t not in self.recorded]

    @contextlib.asynccontextmanager
    async def listening(self, bus: Bus) -> AsyncIterator[None]:
        """Subscribed to every task event and every write to the task bucket for the length of a block."""
        events = await bus.nc.subscribe(topics.EVENTS.all, cb=self.on_event, pending_msgs_limit=-1)
        try:
            records = await bus.nc.subscribe(f"{KV_PREFIX}>", cb=self.on_record, pending_msgs_limit=-1)
            try:
                await bus.nc.flush()
                yield
            finally:
                await records.unsubscribe()
        finally:
            await events.unsubscribe()

    async def wait(self, timeout: float) -> bool:
        """Wait until done() or `timeout`; whether it is done."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.done():
            remaining = deadline - loop.time()
            if remaining <= 0 or len(self.ended_badly) + len(self.succeeded) >= len(self.submitted) > len(
                self.succeeded
            ):
                return False
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), min(remaining, 1.0))
            except TimeoutError:
                pass
        return True


class _HasState(Protocol):
    @property
    def state(self) -> str: ...


Stated = TypeVar("Stated", bound=_HasState)


async def record_states(bus: Bus, bucket: str, ids: set[str], type_: type[Stated]) -> dict[str, str]:
    """The state of every record among `ids` in `bucket` (tasks or workflows), read back from the bucket."""
    states: dict[str, str] = {}
    async for entry in scan.current_entries(bus.js, bucket):
        if entry.key in ids:
            states[entry.key] = codec.decode(type_, entry.value).state
    return states


async def read_ledger(bus: Bus, tenant: str) -> LedgerView:
    """The tenant's ledger as the budget answers now."""
    return await bus.calls.request(topics.BUDGET_GET, GetLedger(tenant=tenant))


async def settled_ledger(bus: Bus, tenant: str, timeout: float) -> LedgerView | None:
    """The tenant's ledger once nothing is held and something was spent, or None after `timeout`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        view = await read_ledger(bus, tenant)
        if view.held_micro_usd == 0 and view.spent_micro_usd > 0:
            return view
        if loop.time() > deadline:
            return None
        await asyncio.sleep(0.01)
