"""Task records in KV by compare-and-set: a stale writer gets Conflict, a fresh read puts it right."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from msgspec import structs

from maestro.bus import Bus
from proto.v1 import TaskRecord
from services.orchestrator.store import Conflict, TaskStore

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def pending(task_id: str) -> TaskRecord:
    return TaskRecord(id=task_id, tenant="acme", state="pending", created_at=NOW, updated_at=NOW)


async def test_create_then_update_by_revision(bus: Bus) -> None:
    store = TaskStore(bus)
    assert await store.get("t-1") is None
    first = await store.put(pending("t-1"), None)
    second = await store.put(structs.replace(pending("t-1"), state="queued"), first)
    assert second > first
    found = await store.get("t-1")
    assert found is not None and found.record.state == "queued" and found.revision == second
    assert store.cached("t-1") == found
    assert await store.read("t-1") is not None and await store.read("t-2") is None


async def test_two_writers_of_one_record_one_wins_the_other_conflicts(bus: Bus) -> None:
    mine, theirs = TaskStore(bus), TaskStore(bus)
    revision = await mine.put(pending("t-1"), None)
    with pytest.raises(Conflict):
        await theirs.put(pending("t-1"), None)  # it exists already
    await theirs.get("t-1")
    await theirs.put(structs.replace(pending("t-1"), state="queued"), revision)
    with pytest.raises(Conflict):
        await mine.put(structs.replace(pending("t-1"), state="rejected"), revision)  # stale
    assert mine.cached("t-1") is None  # the stale copy is forgotten
    fresh = await mine.get("t-1")
    assert fresh is not None and fresh.record.state == "queued"


async def test_terminal_records_are_not_cached_and_the_cache_is_bounded(bus: Bus) -> None:
    store = TaskStore(bus, cache_size=2)
    for n in range(3):
        await store.put(pending(f"t-{n}"), None)
    assert [store.cached(f"t-{n}") is not None for n in range(3)] == [False, True, True]
    done = await store.get("t-2")
    assert done is not None
    await store.put(structs.replace(done.record, state="succeeded"), done.revision)
    assert store.cached("t-2") is None
