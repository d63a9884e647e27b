"""Workflow records in the KV bucket, written by compare-and-set on revision."""

from __future__ import annotations

from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from maestro import codec, topics
from maestro.bus import Bus
from maestro.errors import WrongRevision
from maestro.listing import Page, Query
from maestro.scan import scan
from proto.v1.workflows import WorkflowRecord
from services.orchestrator.store import Conflict


class WorkflowStore:
    """The `maestro_workflows` bucket (key = workflow id), one record per workflow."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self._kv: KeyValue | None = None

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

    async def scan(self, query: Query) -> Page[WorkflowRecord]:
        """One page of the records matching `query`, newest first: see maestro.scan.scan() for its cost."""
        return await scan(self._bus.js, topics.BUCKET_WORKFLOWS, query, WorkflowRecord)

    async def put(self, record: WorkflowRecord, revision: int | None) -> int:
        """Write `record` if the stored one is still at `revision` (None: only if there is none yet).

        Returns the new revision; raises Conflict when it changed.
        """
        try:
            return await self._bus.streams.compare_and_set(
                topics.BUCKET_WORKFLOWS, record.id, codec.encode(record), revision
            )
        except WrongRevision:
            raise Conflict(record.id, revision) from None
