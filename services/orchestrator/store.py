"""Task records in the KV bucket, written by compare-and-set on revision, with a small cache of live tasks."""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import NamedTuple

from nats.errors import Error as NatsError
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from maestro import codec, topics
from maestro.bus import Bus
from maestro.errors import MaestroError, WrongRevision
from proto.v1 import TERMINAL_STATES, TaskRecord
from services.orchestrator.listing import MAX_SCAN, Page, Query, Selection, TooMany

DEFAULT_CACHE_SIZE = 65_536


class StoreError(MaestroError):
    """Base of the task store's errors."""


class Conflict(StoreError):
    """The record changed since it was read (another writer won): read it again and retry."""

    def __init__(self, task_id: str, revision: int | None) -> None:
        expected = "no record" if revision is None else f"revision {revision}"
        super().__init__(f"task {task_id} changed since it was read (expected {expected})")
        self.task_id = task_id
        self.revision = revision


class Versioned(NamedTuple):
    """A record and the KV revision it was read or written at."""

    record: TaskRecord
    revision: int


class TaskStore:
    """The `maestro_tasks` bucket (key = task id), one record per task.

    Writes are compare-and-set on the revision last seen, so several orchestrator replicas stay correct:
    a stale cached record only costs a Conflict and a fresh read. Only tasks that are not terminal are
    cached (a terminal task rarely hears of anything again), at most `cache_size` of them.
    """

    def __init__(self, bus: Bus, *, cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        self._bus = bus
        self._js = bus.js
        self._kv: KeyValue | None = None
        self._cache: OrderedDict[str, Versioned] = OrderedDict()
        self._cache_size = cache_size

    async def _bucket(self) -> KeyValue:
        if self._kv is None:
            self._kv = await self._js.key_value(topics.BUCKET_TASKS)
        return self._kv

    def cached(self, task_id: str) -> Versioned | None:
        """The record as this process last read or wrote it, if it is still cached (may be stale)."""
        hit = self._cache.get(task_id)
        if hit is not None:
            self._cache.move_to_end(task_id)
        return hit

    def forget(self, task_id: str) -> None:
        """Drop a cached record, so the next get reads the bucket."""
        self._cache.pop(task_id, None)

    async def read(self, task_id: str) -> bytes | None:
        """The stored record's JSON as it is in the bucket, or None; never cached."""
        try:
            entry = await (await self._bucket()).get(task_id)
        except KeyNotFoundError:
            return None
        return entry.value or None

    async def get(self, task_id: str) -> Versioned | None:
        """The record and its revision from the bucket (not the cache), or None when there is none."""
        try:
            entry = await (await self._bucket()).get(task_id)
        except KeyNotFoundError:
            self.forget(task_id)
            return None
        if not entry.value or entry.revision is None:
            self.forget(task_id)
            return None
        found = Versioned(codec.decode(TaskRecord, entry.value), entry.revision)
        self._remember(found)
        return found

    async def put(self, record: TaskRecord, revision: int | None) -> int:
        """Write `record` if the stored one is still at `revision` (None: only if there is none yet).

        Returns the new revision; raises Conflict (and forgets the cached record) when it changed.
        """
        try:
            new = await self._bus.compare_and_set(
                topics.BUCKET_TASKS, record.id, codec.encode(record), revision
            )
        except WrongRevision:
            self.forget(record.id)
            raise Conflict(record.id, revision) from None
        self._remember(Versioned(record, new))
        return new

    async def scan(self, query: Query) -> Page[TaskRecord]:
        """One page of the records matching `query`, newest first: see scan_tasks() for what it costs."""
        return await scan_tasks(await self._bucket(), query)

    def _remember(self, versioned: Versioned) -> None:
        task_id = versioned.record.id
        if versioned.record.state in TERMINAL_STATES:
            self._cache.pop(task_id, None)
            return
        self._cache[task_id] = versioned
        self._cache.move_to_end(task_id)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)


async def current_values(kv: KeyValue, *, most: int = MAX_SCAN) -> AsyncIterator[bytes]:
    """Every key's current value in a bucket, in one pass of an ordered consumer (the last value per key;
    deleted keys skipped), as the bucket was when the pass began.

    Raises TooMany before reading anything when the bucket holds more than `most` messages (with history 1,
    one per key), and during the pass if it grew past `most` since.
    """
    status = await kv.status()
    if status.values > most:
        raise TooMany(status.bucket, status.values, most)
    watcher = await kv.watchall(ignore_deletes=True)
    try:
        seen = 0
        while (entry := await anext(watcher)) is not None:  # None: the end of what was stored
            seen += 1
            if seen > most:
                raise TooMany(status.bucket, seen, most)
            if entry.value:
                yield entry.value
    finally:
        with contextlib.suppress(NatsError):  # the connection closed under the pass: nothing to stop
            await watcher.stop()  # type: ignore[no-untyped-call]


async def scan_tasks(kv: KeyValue, query: Query) -> Page[TaskRecord]:
    """One page of the `maestro_tasks` records matching `query`, newest first.

    Every page costs a pass over the whole bucket: each current record is read and decoded once, and only
    the page's records are kept. A bucket of more than listing.MAX_SCAN records raises TooMany, unread.
    A record that does not decode is left out.
    """
    selection: Selection[TaskRecord] = Selection(query)
    async for value in current_values(kv):
        with contextlib.suppress(codec.DecodeError):
            record = codec.decode(TaskRecord, value)
            selection.offer(record, record.role)
    return selection.page()
