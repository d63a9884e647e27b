"""Task records in the KV bucket, written by compare-and-set on revision, with a small cache of live tasks."""

from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from maestro import codec, topics
from maestro.bus import Bus
from maestro.errors import MaestroError, WrongRevision
from maestro.listing import MAX_LIMIT, Page, Query, position
from maestro.scan import scan
from proto.v1 import TERMINAL_STATES, TaskRecord

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

    async def record(self, task_id: str) -> TaskRecord | None:
        """The stored record, decoded, or None; never cached."""
        stored = await self.read(task_id)
        return codec.decode(TaskRecord, stored) if stored is not None else None

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
            new = await self._bus.streams.compare_and_set(
                topics.BUCKET_TASKS, record.id, codec.encode(record), revision
            )
        except WrongRevision:
            self.forget(record.id)
            raise Conflict(record.id, revision) from None
        self._remember(Versioned(record, new))
        return new

    async def scan(self, query: Query) -> Page[TaskRecord]:
        """One page of the records matching `query`, newest first: see maestro.scan.scan() for its cost."""
        return await scan(self._js, topics.BUCKET_TASKS, query, TaskRecord, lambda r: r.role)

    async def every(self, states: frozenset[str]) -> list[TaskRecord]:
        """Every record in one of `states`, read a page at a time; raises ListingError or NATS' errors."""
        records: list[TaskRecord] = []
        query = Query(states=states, limit=MAX_LIMIT)
        while True:
            page = await self.scan(query)
            records.extend(page.items)
            if page.next_cursor is None or not page.items:
                return records
            query = Query(states=states, limit=MAX_LIMIT, after=position(page.items[-1]))

    def _remember(self, versioned: Versioned) -> None:
        task_id = versioned.record.id
        if versioned.record.state in TERMINAL_STATES:
            self._cache.pop(task_id, None)
            return
        self._cache[task_id] = versioned
        self._cache.move_to_end(task_id)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
