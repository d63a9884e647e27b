"""A task's stored events read back: a short history by one request per event, no consumer made (readers that
poll thousands of tasks made thousands of consumers); a long one whole, the rest through a consumer."""

from __future__ import annotations

from maestro import history, topics
from maestro.bus import Bus
from proto.v1 import Accepted, Heartbeat, TaskEvent
from tests.services.orchestrator.support import emit, now


async def consumers(bus: Bus) -> int:
    return (await bus.js.stream_info(topics.STREAM_EVENTS)).state.consumer_count


async def test_a_short_history_is_read_without_a_consumer_and_a_long_one_whole(bus: Bus) -> None:
    short: list[TaskEvent] = [
        Accepted(task_id="t-short", tenant="acme", at=now(), role="tester"),
        Heartbeat(task_id="t-short", tenant="acme", at=now(), worker="w"),
    ]
    long: list[TaskEvent] = [Accepted(task_id="t-long", tenant="acme", at=now(), role="tester")]
    long += [
        Heartbeat(task_id="t-long", tenant="acme", at=now(), worker=f"w{n}")
        for n in range(history.DIRECT_MOST + 10)
    ]
    for a, b in zip(long, [*short, *[None] * len(long)], strict=False):
        await emit(bus, a)  # the two tasks' events interleaved, as in the stream
        if b is not None:
            await emit(bus, b)
    before = await consumers(bus)
    assert [e for _, e in await history.read_stored(bus.js, "t-short")] == short
    assert await consumers(bus) == before
    stored = await history.read_stored(bus.js, "t-long")
    assert [e for _, e in stored] == long
    assert [s for s, _ in stored] == sorted(s for s, _ in stored)
    assert await history.read_stored(bus.js, "t-none") == []
