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


class Seen:
    """A process() that keeps each batch it is given and handles every item."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    async def process(self, key: str, items: list[int]) -> list[Outcome]:
        self.batches.append(items)
        return [None] * len(items)


async def test_with_a_linger_items_wait_for_more_of_their_key_and_an_urgent_one_ends_the_wait() -> None:
    seen = Seen()
    # Items over 100 are urgent (as an event that ends its task).
    batches: KeyedBatches[int] = KeyedBatches(seen.process, linger_s=30.0, urgent=lambda n: n > 100)
    loop = asyncio.get_running_loop()
    began = loop.time()
    waiting = [batches.enqueue("a", 1), batches.enqueue("a", 2)]
    await asyncio.sleep(0.01)
    assert seen.batches == [] and not any(f.done() for f in waiting)
    await asyncio.wait_for(asyncio.gather(*waiting, batches.enqueue("a", 101)), 1)
    assert seen.batches == [[1, 2, 101]]
    assert loop.time() - began < 1


async def test_a_lingering_batch_is_processed_once_its_linger_is_over() -> None:
    seen = Seen()
    batches: KeyedBatches[int] = KeyedBatches(seen.process, linger_s=0.05, urgent=lambda n: False)
    loop = asyncio.get_running_loop()
    began = loop.time()
    await asyncio.wait_for(asyncio.gather(batches.enqueue("a", 1), batches.enqueue("b", 2)), 1)
    assert 0.05 <= loop.time() - began < 0.5
    assert sorted(seen.batches) == [[1], [2]]
    assert len(batches) == 0


async def test_a_patient_batch_lingers_longer_until_an_impatient_item_cuts_it_short() -> None:
    """Items under 10 are patient (a task's events before it starts), items over 100 urgent (its end)."""
    seen = Seen()
    batches: KeyedBatches[int] = KeyedBatches(
        seen.process,
        linger_s=0.05,
        urgent=lambda n: n > 100,
        patient=lambda n: n < 10,
        patient_linger_s=30.0,
        max_patient=10,
    )
    loop = asyncio.get_running_loop()
    patient = [batches.enqueue("a", 1), batches.enqueue("a", 2)]
    # A plain batch of another key, begun after the patient one, lingers its 0.05 s and is processed.
    await asyncio.wait_for(batches.enqueue("b", 50), 1)
    assert seen.batches == [[50]] and not any(f.done() for f in patient)
    began = loop.time()
    await asyncio.wait_for(asyncio.gather(*patient, batches.enqueue("a", 50)), 1)
    assert 0.05 <= loop.time() - began < 0.5
    assert seen.batches == [[50], [1, 2, 50]]


async def test_past_max_patient_a_patient_batch_lingers_the_plain_length() -> None:
    seen = Seen()
    batches: KeyedBatches[int] = KeyedBatches(
        seen.process,
        linger_s=0.05,
        urgent=lambda n: False,
        patient=lambda n: True,
        patient_linger_s=30.0,
        max_patient=2,
    )
    held = [batches.enqueue(key, 1) for key in ("a", "b")]
    await asyncio.wait_for(batches.enqueue("c", 1), 1)
    assert seen.batches == [[1]] and not any(f.done() for f in held)
    batches.hurry()
    await asyncio.wait_for(asyncio.gather(*held), 1)
    assert len(seen.batches) == 3


async def test_hurried_batches_end_their_lingers_and_linger_no_more() -> None:
    seen = Seen()
    batches: KeyedBatches[int] = KeyedBatches(seen.process, linger_s=30.0, urgent=lambda n: False)
    lingering = batches.enqueue("a", 1)
    await asyncio.sleep(0)
    assert not lingering.done()
    batches.hurry()
    await asyncio.wait_for(asyncio.gather(lingering, batches.enqueue("b", 2)), 1)
    assert seen.batches == [[1], [2]]
