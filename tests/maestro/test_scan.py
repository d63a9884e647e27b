"""Reading every key of a bucket in one pass: all of them, every time, and nothing deleted."""

from __future__ import annotations

from maestro import scan, topics
from maestro.bus import Bus
from maestro.presence import roles_with_worker
from proto.v1.ids import ROLES


async def test_every_key_is_listed_every_time(bus: Bus) -> None:
    # Found by a flaky API test: nats-py's KeyValue.keys() ends on a marker raced against its consumer's
    # creation and came back short in about 6 of 100 listings of 300 keys on a quiet machine, so a running
    # agent's role could look unserved. Thirty listings here would then fail about 5 runs in 6.
    workers = await bus.js.key_value(topics.BUCKET_WORKERS)
    wanted = {topics.worker_key(role, f"w{n}") for role in ROLES for n in range(50)}
    for key in wanted:
        await workers.put(key, b"now")
    for _ in range(30):
        assert set(await scan.keys(bus.js, topics.BUCKET_WORKERS)) == wanted
        assert await roles_with_worker(bus) == set(ROLES)


async def test_deleted_keys_are_not_listed_and_an_empty_bucket_lists_nothing(bus: Bus) -> None:
    assert await scan.keys(bus.js, topics.BUCKET_WORKERS) == []
    workers = await bus.js.key_value(topics.BUCKET_WORKERS)
    await workers.put("planner.a", b"now")
    await workers.put("tester.b", b"now")
    await workers.delete("planner.a")
    assert await scan.keys(bus.js, topics.BUCKET_WORKERS) == ["tester.b"]
    entries = [e async for e in scan.current_entries(bus.js, topics.BUCKET_WORKERS)]
    assert [(e.key, e.value) for e in entries] == [("tester.b", b"now")] and entries[0].revision > 0
