"""Worker presence on a real nats-server: agents announce the roles they serve; anyone asks which lack one."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable

import pytest

from maestro import topics, topology
from maestro.bus import Bus
from maestro.presence import PresenceView, announcing, roles_without_worker
from proto.v1.ids import ROLES


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    """Wait until `check()` holds; fails the test after `within` seconds."""
    async with asyncio.timeout(within):
        while True:
            if await check():
                return
            await asyncio.sleep(0.02)


async def test_with_no_agent_every_role_is_without_a_worker(bus: Bus) -> None:
    assert await roles_without_worker(bus, ROLES) == list(ROLES)


async def test_an_announcing_worker_serves_its_roles_while_it_runs_and_not_after(bus: Bus) -> None:
    async with announcing(bus, ["tester", "planner"], "w-1"):
        assert await roles_without_worker(bus, ROLES) == [
            "scaffolder",
            "implementer",
            "reviewer",
            "doc-writer",
        ]
        async with announcing(bus, ["tester"], "w-2"):
            assert "tester" not in await roles_without_worker(bus, ["tester"])
        # w-1 still serves the tester role after w-2 left.
        assert await roles_without_worker(bus, ["tester", "planner", "reviewer"]) == ["reviewer"]
    assert await roles_without_worker(bus, ["tester", "planner"]) == ["tester", "planner"]


async def test_a_worker_keeps_its_announcement_fresh_while_it_runs(bus: Bus) -> None:
    workers = await bus.js.key_value(topics.BUCKET_WORKERS)
    key = topics.worker_key("reviewer", "w-fresh")
    async with announcing(bus, ["reviewer"], "w-fresh", every_s=0.05):
        first = (await workers.get(key)).revision or 0

        async def refreshed() -> bool:
            return ((await workers.get(key)).revision or 0) > first + 1  # two refreshes at least

        await eventually(refreshed)


async def test_a_worker_that_died_without_a_word_expires_with_the_bucket_s_ttl(bus: Bus) -> None:
    workers = await bus.js.key_value(topics.BUCKET_WORKERS)
    assert (await workers.status()).ttl == topology.WORKER_TTL_S
    # The same bucket with a TTL short enough for a test; a crashed worker's last announcement stays behind.
    [config] = [b for b in topology.topology(bus.settings).buckets if b.bucket == topics.BUCKET_WORKERS]
    await bus.js.delete_key_value(topics.BUCKET_WORKERS)
    await bus.js.create_key_value(dataclasses.replace(config, ttl=1.0))
    await (await bus.js.key_value(topics.BUCKET_WORKERS)).put(topics.worker_key("tester", "w-dead"), b'""')
    assert await roles_without_worker(bus, ["tester"]) == []

    async def expired() -> bool:
        return await roles_without_worker(bus, ["tester"]) == ["tester"]

    await eventually(expired)


async def test_refreshing_as_slowly_as_the_ttl_is_refused(bus: Bus) -> None:
    with pytest.raises(ValueError, match="every_s"):
        async with announcing(bus, ["tester"], "w-slow", every_s=topology.WORKER_TTL_S):
            pass  # pragma: no cover


async def test_a_worker_name_that_is_no_key_still_announces(bus: Bus) -> None:
    async with announcing(bus, ["tester"], "host.example.com-12 *>"):
        assert await roles_without_worker(bus, ["tester"]) == []
    assert await roles_without_worker(bus, ["tester"]) == ["tester"]


async def test_the_view_reads_the_bucket_at_most_once_per_max_age(bus: Bus) -> None:
    now = [100.0]
    view = PresenceView(bus, max_age_s=2.0, clock=lambda: now[0])
    assert await view.roles_without_worker(["tester"]) == ["tester"]
    async with announcing(bus, ["tester"], "w-1"):
        assert await view.roles_without_worker(["tester"]) == ["tester"]  # still the first read
        now[0] += 2.5
        assert await view.roles_without_worker(["tester"]) == []
        # Many callers at once share one read.
        now[0] += 2.5
        answers = await asyncio.gather(*(view.roles_without_worker(["tester", "planner"]) for _ in range(20)))
        assert answers == [["planner"]] * 20


async def test_a_worker_whose_block_fails_is_withdrawn_too(bus: Bus) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        async with announcing(bus, ["implementer"], "w-fails"):
            assert await roles_without_worker(bus, ["implementer"]) == []
            raise RuntimeError("boom")
    assert await roles_without_worker(bus, ["implementer"]) == ["implementer"]
