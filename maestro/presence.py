"""Worker presence: which roles have a running agent, so a task for a role nobody serves is not silent.

Each agent announces every role it serves in the `maestro_workers` bucket (key `<role>.<worker>`) while it
runs, with how many of the role's tasks it runs at once (a WorkerPresence), refreshing the entry well inside
the bucket's TTL and deleting it when it stops; an agent that dies without a word drops out when the TTL ages
its last announcement away. A role is served while any key of it is present. An entry aged out by the TTL
leaves no delete marker for a watcher to see, so the readers here list the keys, and PresenceView keeps that
list for a second or two; the dispatcher, which watches the bucket for the slots, counts an announcement
older than the TTL as gone.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from nats.errors import Error as NatsError
from nats.js.kv import KeyValue

from maestro import codec, scan, topics
from maestro.bus import Bus
from proto.v1 import WorkerPresence
from proto.v1.ids import is_human

log = logging.getLogger(__name__)

# A third of the bucket's 30 s TTL: two refreshes may be lost (a NATS reconnect) before a live worker expires.
DEFAULT_EVERY_S = 10.0
# How long a stopping agent spends withdrawing its announcements before leaving them to the TTL.
_WITHDRAW_S = 1.0


@asynccontextmanager
async def announcing(
    bus: Bus, roles: Iterable[str], worker: str, *, slots: int = 0, every_s: float = DEFAULT_EVERY_S
) -> AsyncIterator[None]:
    """While the block runs, announce that `worker` serves each of `roles`, running `slots` tasks of each at
    once; withdraw it when the block ends.

    The first announcement is made before the block starts, then refreshed every `every_s` seconds. A failed
    write (NATS away for a moment) is logged and tried again at the next refresh, never raised: an agent that
    cannot announce itself still works. Raises ValueError when `every_s` is not shorter than the bucket's TTL
    (the announcement would lapse between refreshes).

    An agent wraps the consumers of its roles, so that it is announced exactly while it takes their tasks:

        async with announcing(bus, roles, bus.settings.worker), asyncio.TaskGroup() as group:
            for role in roles:
                group.create_task(bus.consumers.consume(...))
    """
    workers = await bus.js.key_value(topics.BUCKET_WORKERS)
    ttl = (await workers.status()).ttl
    if ttl and every_s >= ttl:
        raise ValueError(
            f"every_s={every_s} must be shorter than the {ttl:g} s TTL of {topics.BUCKET_WORKERS}"
        )
    keys = [topics.worker_key(role, worker) for role in dict.fromkeys(roles)]
    await _announce(workers, keys, slots)
    refresh = asyncio.create_task(_refresh(workers, keys, slots, every_s), name=f"announce-{worker}")
    try:
        yield
    finally:
        refresh.cancel()
        await asyncio.wait((refresh,))
        if bus.nc.is_connected:
            # All at once under one short deadline: a server that went away must not hold up a stop by a
            # request time-out per role. Whatever is not withdrawn expires with the TTL.
            withdrawals = [asyncio.create_task(_withdraw(workers, key)) for key in keys]
            await asyncio.wait(withdrawals, timeout=_WITHDRAW_S)
            for late in withdrawals:
                late.cancel()


async def _withdraw(workers: KeyValue, key: str) -> None:
    try:
        await workers.delete(key)
    except (NatsError, TimeoutError) as exc:
        log.warning("could not withdraw %s from %s: %r", key, topics.BUCKET_WORKERS, exc)


async def _announce(workers: KeyValue, keys: list[str], slots: int) -> None:
    now = codec.encode(WorkerPresence(at=datetime.now(UTC), slots=slots))
    for key in keys:
        try:
            await workers.put(key, now)
        except (NatsError, TimeoutError) as exc:
            log.warning("could not announce %s in %s: %r", key, topics.BUCKET_WORKERS, exc)


async def _refresh(workers: KeyValue, keys: list[str], slots: int, every_s: float) -> None:
    while True:
        await asyncio.sleep(every_s)
        await _announce(workers, keys, slots)


def unserved_warning(roles: Sequence[str], waiting: str) -> str:
    """The one wording of the warning that work waits for roles no running agent serves; `waiting` says
    what waits (`the task waits`, `those steps wait`)."""
    named = f"the {roles[0]} role" if len(roles) == 1 else f"the {', '.join(roles)} roles"
    return f"no running agent serves {named} yet: once allowed, {waiting}, its budget held, until one starts"


async def roles_with_worker(bus: Bus) -> set[str]:
    """The roles some running worker announces now (one listing of the bucket's keys)."""
    return {topics.role_of_worker_key(key) for key in await scan.keys(bus.js, topics.BUCKET_WORKERS)}


async def roles_without_worker(bus: Bus, roles: Iterable[str]) -> list[str]:
    """Those of `roles` that no running worker serves, in the order given (read now, not cached); a human
    queue is never one: people, not workers, serve it."""
    served = await roles_with_worker(bus)
    return _unserved(roles, served)


def _unserved(roles: Iterable[str], served: Collection[str]) -> list[str]:
    return [role for role in roles if role not in served and not is_human(role)]


class PresenceView:
    """roles_without_worker() for a hot path: the bucket is listed at most once per `max_age_s`, and callers
    that arrive while it is being listed share that one listing."""

    def __init__(
        self, bus: Bus, *, max_age_s: float = 2.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.bus = bus
        self.max_age_s = max_age_s
        self.clock = clock
        self._served: set[str] = set()
        self._read_at: float | None = None
        self._lock = asyncio.Lock()

    async def roles_without_worker(self, roles: Iterable[str]) -> list[str]:
        """Those of `roles` that no running worker serves, as listed at most `max_age_s` ago.

        Raises what reading the bucket raises (nats.errors.Error, TimeoutError) when the listing is stale
        and cannot be read again.
        """
        if self._stale():
            async with self._lock:
                if self._stale():  # nobody listed it while this caller waited for the lock
                    self._served = await roles_with_worker(self.bus)
                    self._read_at = self.clock()
        return _unserved(roles, self._served)

    def _stale(self) -> bool:
        return self._read_at is None or self.clock() - self._read_at >= self.max_age_s
