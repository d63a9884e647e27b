"""Per-key locks: one holder per key at a time, waiters served in arrival order, nothing left behind."""

from __future__ import annotations

import asyncio

from services.orchestrator.locks import KeyedLocks


async def test_one_key_is_held_in_arrival_order_and_other_keys_run_alongside() -> None:
    locks = KeyedLocks()
    order: list[str] = []
    gate = asyncio.Event()

    async def work(key: str, name: str) -> None:
        async with locks.hold(key):
            order.append(f"{name}+")
            await gate.wait()
            order.append(f"{name}-")

    tasks = [asyncio.create_task(work(k, n)) for k, n in (("a", "a1"), ("a", "a2"), ("b", "b1"), ("a", "a3"))]
    await asyncio.sleep(0)
    assert order == ["a1+", "b1+"]  # a2 and a3 wait for a1; b is another key
    assert len(locks) == 2
    gate.set()
    await asyncio.gather(*tasks)
    assert [o for o in order if o.startswith("a")] == ["a1+", "a1-", "a2+", "a2-", "a3+", "a3-"]
    assert len(locks) == 0


async def test_a_failing_holder_releases_the_key() -> None:
    locks = KeyedLocks()
    try:
        async with locks.hold("a"):
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    async with asyncio.timeout(1), locks.hold("a"):
        pass
    assert len(locks) == 0
