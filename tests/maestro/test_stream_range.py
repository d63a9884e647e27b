"""A stream's range since a time: only what was stored at or after it, on the subjects asked for, bounded."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from maestro.bus import Bus
from maestro.stream_range import read_range

STREAM = "RANGE_TEST"


async def test_a_range_holds_what_was_stored_since_its_start_on_its_subjects_only(bus: Bus) -> None:
    await bus.js.add_stream(name=STREAM, subjects=["range.>"])
    await bus.js.publish("range.a", b"old")
    old = await bus.js.get_msg(STREAM, seq=1)
    assert old.time is not None
    # What is tested is time: the server finds a start time to about a millisecond, so the range starts
    # 100 ms after the old message, and the new ones are stored 200 ms after it.
    since = old.time + timedelta(milliseconds=100)
    await asyncio.sleep(0.2)
    for i in range(5):
        await bus.js.publish("range.a", f"a{i}".encode())
        await bus.js.publish("range.b", f"b{i}".encode())
        await bus.js.publish("range.c", f"c{i}".encode())

    got = await read_range(bus.js, STREAM, ["range.a", "range.b"], since)

    assert [m.data for m in got.messages] == [
        x for i in range(5) for x in (f"a{i}".encode(), f"b{i}".encode())
    ]
    assert not got.partial
    assert all(m.stored_at >= since for m in got.messages)
    assert [m.seq for m in got.messages] == sorted(m.seq for m in got.messages)


async def test_a_range_past_its_limit_is_partial_and_an_empty_one_is_not(bus: Bus) -> None:
    await bus.js.add_stream(name=STREAM, subjects=["range.>"])
    for i in range(20):
        await bus.js.publish("range.a", str(i).encode())

    cut = await read_range(bus.js, STREAM, ["range.>"], datetime.now(UTC) - timedelta(hours=1), limit=7)
    empty = await read_range(bus.js, STREAM, ["range.z"], datetime.now(UTC) - timedelta(hours=1))

    assert [m.data for m in cut.messages] == [str(i).encode() for i in range(7)]
    assert cut.partial
    assert empty.messages == [] and not empty.partial
