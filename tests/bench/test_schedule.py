"""The offered rate's schedule: every index in order, none before its time, a late one at once."""

from __future__ import annotations

import asyncio

from bench.schedule import on_schedule


async def test_each_index_comes_no_earlier_than_its_time_and_a_late_one_does_not_move_the_rest() -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    seen: list[tuple[int, float]] = []
    async for i in on_schedule(100.0, 5):
        seen.append((i, loop.time() - start))
        if i == 1:
            await asyncio.sleep(0.025)  # a caller that took longer than two slots
    assert [i for i, _ in seen] == [0, 1, 2, 3, 4]
    assert all(at >= i / 100.0 - 0.001 for i, at in seen)
    # 2 and 3 were due while the caller was busy: they go at once; 4 keeps its time on the schedule.
    assert seen[3][1] - seen[2][1] < 0.005
    assert seen[4][1] >= 0.04 - 0.001
