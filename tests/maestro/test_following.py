"""Following KV keys: every value as it is written, and an end as soon as the stop event is set."""

from __future__ import annotations

import asyncio

from maestro.bus import Bus
from maestro.following import follow_keys


async def test_every_value_is_offered_and_setting_stopping_ends_it_without_a_cancel(bus: Bus) -> None:
    # Its users cancel it at their stop too, but nats-py swallows a cancel that lands while a subscription is
    # being made: the stop event alone must end it (a dispatcher's stop once waited on it for ever).
    kv = await bus.js.create_key_value(bucket="following-test")
    await kv.put("a", b"1")
    offered: list[tuple[str, bytes | None]] = []
    seen = asyncio.Event()

    def offer(key: str, value: bytes | None, _revision: int) -> None:
        offered.append((key, value))
        seen.set()

    stopping = asyncio.Event()
    following = asyncio.create_task(follow_keys(kv, ">", offer, stopping))
    async with asyncio.timeout(10):
        await seen.wait()
        await kv.put("b", b"2")
        await kv.delete("a")
        while len(offered) < 3:
            seen.clear()
            await seen.wait()
    assert offered == [("a", b"1"), ("b", b"2"), ("a", None)]

    stopping.set()
    done, _ = await asyncio.wait({following}, timeout=5)
    assert done, "follow_keys went on watching after stopping was set"
    assert following.result() is None
