"""Workflow records in the KV bucket, written by compare-and-set on revision."""

from __future__ import annotations

import contextlib

from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from maestro import codec, topics
from maestro.bus import Bus
from maestro.errors import WrongRevision
from proto.v1.workflows import WorkflowRecord
from services.orchestrator.listing import Page, Query, Selection
from services.orchestrator.store import Conflict, current_values


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
        """One page of the records matching `query`, newest first: see scan_workflows() for what it costs."""
        return await scan_workflows(await self._bucket(), query)

    async def put(self, record: WorkflowRecord, revision: int | None) -> int:
        """Write `record` if the stored one is still at `revision` (None: only if there is none yet).

        Returns the new revision; raises Conflict when it changed.
        """
        try:
            return await self._bus.compare_and_set(
                topics.BUCKET_WORKFLOWS, record.id, codec.encode(record), revision
            )
        except WrongRevision:
            raise Conflict(record.id, revision) from None


async def scan_workflows(kv: KeyValue, query: Query) -> Page[WorkflowRecord]:
    """One page of the `maestro_workflows` records matching `query`, newest first.

    Every page costs a pass over the whole bucket (store.current_values: each record read and decoded once,
    only the page kept); a bucket of more than listing.MAX_SCAN records raises TooMany, unread. A record that
    does not decode is left out.
    """
    selection: Selection[WorkflowRecord] = Selection(query)
    async for value in current_values(kv):
        with contextlib.suppress(codec.DecodeError):
            selection.offer(codec.decode(WorkflowRecord, value))
    return selection.page()
