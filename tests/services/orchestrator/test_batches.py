"""Per-key batches: one key's items in arrival order, piled-up items processed together, outcomes per item."""

from __future__ import annotations

import asyncio

import pytest

from services.orchestrator.batches import KeyedBatches, Outcome


async def test_items_of_one_key_are_processed_in_order_and_pile_up_into_batches() -> None:
    batches_seen: list[list[int]] = []
    release = asyncio.Event()

    async def process(key: str, items: list[int]) -> list[Outcome]:
        batches_seen.append(items)
        if len(batches_seen) == 1:
            await release.wait()
        return [None] * len(items)

    batches: KeyedBatches[int] = KeyedBatches(process)
    first = asyncio.create_task(batches.submit("a", 1))
    await asyncio.sleep(0)
    rest = [asyncio.create_task(batches.submit("a", n)) for n in (2, 3, 4)]
    await asyncio.sleep(0)
    release.set()
    await asyncio.wait_for(asyncio.gather(first, *rest), 1)
    assert batches_seen == [[1], [2, 3, 4]]
    assert len(batches) == 0


async def test_each_item_gets_its_own_outcome_and_other_keys_are_not_held_up() -> None:
    async def process(key: str, items: list[int]) -> list[Outcome]:
        return [ValueError(f"bad {n}") if n % 2 else None for n in items]

    batches: KeyedBatches[int] = KeyedBatches(process)
    await batches.submit("a", 2)
    with pytest.raises(ValueError, match="bad 3"):
        await batches.submit("b", 3)
    assert len(batches) == 0


async def test_a_failing_process_fails_its_batch_and_frees_the_key() -> None:
    calls = 0

    async def process(key: str, items: list[int]) -> list[Outcome]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("store down")
        return [None] * len(items)

    batches: KeyedBatches[int] = KeyedBatches(process)
    with pytest.raises(RuntimeError):
        await batches.submit("a", 1)
    await batches.submit("a", 2)
    assert len(batches) == 0
