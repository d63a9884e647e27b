"""Workflow records in the KV bucket, written by compare-and-set on revision."""

from __future__ import annotations

from collections import OrderedDict

from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from maestro import codec, topics
from maestro.bus import Bus
from maestro.errors import WrongRevision
from maestro.listing import Page, Query
from maestro.scan import scan
from proto.v1.workflows import WORKFLOW_ENDED, WorkflowRecord
from services.orchestrator.store import Conflict

WRITTEN_KEPT_BYTES = 32 << 20
"""Most bytes of running workflows' last writes a store remembers (the least recently written go first)."""


class WorkflowStore:
    """The `maestro_workflows` bucket (key = workflow id), one record per workflow.

    It remembers what it last wrote of each running workflow (`remembered`), so that the next change of one
    can start from that instead of reading it back: the write that follows is a compare-and-set, which fails
    when another replica changed the record meanwhile."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self._kv: KeyValue | None = None
        self._written: OrderedDict[str, tuple[WorkflowRecord, int, int]] = OrderedDict()
        """Workflow id -> the record this store last wrote, its revision and its size."""
        self._written_bytes = 0

    async def _bucket(self) -> KeyValue:
        if self._kv is None:
            self._kv = await self._bus.js.key_value(topics.BUCKET_WORKFLOWS)
        return self._kv

    async def get(self, workflow_id: str) -> tuple[WorkflowRecord, int] | None:
        """The record and its revision, or None when there is none."""
        try:
            entry = await (await self._bucket()).get(workflow_id)
        except KeyNotFoundError:
            return None
        if not entry.value or entry.revision is None:
            return None
        return codec.decode(WorkflowRecord, entry.value), entry.revision

    def remembered(self, workflow_id: str) -> tuple[WorkflowRecord, int] | None:
        """What this store last wrote of a running workflow, with its revision; None when it has forgotten."""
        written = self._written.get(workflow_id)
        return written[:2] if written is not None else None

    async def scan(self, query: Query) -> Page[WorkflowRecord]:
        """One page of the records matching `query`, newest first: see maestro.scan.scan() for its cost."""
        return await scan(self._bus.js, topics.BUCKET_WORKFLOWS, query, WorkflowRecord)

    async def put(self, record: WorkflowRecord, revision: int | None) -> int:
        """Write `record` if the stored one is still at `revision` (None: only if there is none yet).

        Returns the new revision; raises Conflict when it changed.
        """
        self._forget(record.id)
        encoded = codec.encode(record)
        try:
            written = await self._bus.streams.compare_and_set(
                topics.BUCKET_WORKFLOWS, record.id, encoded, revision
            )
        except WrongRevision:
            raise Conflict(record.id, revision) from None
        if record.state not in WORKFLOW_ENDED:
            self._written[record.id] = (record, written, len(encoded))
            self._written_bytes += len(encoded)
            while self._written_bytes > WRITTEN_KEPT_BYTES:
                self._forget(next(iter(self._written)))
        return written

    def _forget(self, workflow_id: str) -> None:
        dropped = self._written.pop(workflow_id, None)
        if dropped is not None:
            self._written_bytes -= dropped[2]
