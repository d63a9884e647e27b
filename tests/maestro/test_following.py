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


async def test_a_cancel_ends_it_wherever_it_lands_even_where_nats_py_swallows_one(bus: Bus) -> None:
    # A task group whose body failed cancels its children and waits for them: a follower that outlived its
    # cancel (nats-py swallows one that lands while it flushes a subscription) held a guard that had lost
    # its consumer until the mesh stopped. Cancels land from 0 to 15 ms into its start, at every step of it.
    kv = await bus.js.create_key_value(bucket="following-test")
    await kv.put("a", b"1")
    never = asyncio.Event()
    for step in range(150):
        following = asyncio.create_task(follow_keys(kv, ">", lambda *_: None, never))
        await asyncio.sleep(step / 10_000)
        following.cancel()
        done, _ = await asyncio.wait({following}, timeout=5)
        assert done, f"cancelled {step / 10:.1f} ms into its start, it went on following"
