"""The capacity search: doubling until a probe fails, then bisecting to within the precision."""

from __future__ import annotations

import math
from dataclasses import dataclass

from bench.capacity import Bounds, failure, next_rate, search


@dataclass(frozen=True)
class Probe:
    rate: float
    achieved_rate: float
    p99_ms: float
    unfinished: int = 0


def test_a_probe_fails_on_its_p99_on_unfinished_tasks_and_on_a_short_offered_rate() -> None:
    bounds = Bounds(p99_ms=50.0, shortfall=0.05)
    assert failure(Probe(1000, 990, 49.9), bounds) is None
    assert failure(Probe(1000, 1000, 50.0), bounds) == "p99 50.0 ms"
    assert failure(Probe(1000, 1000, math.nan), bounds) is not None
    assert failure(Probe(1000, 1000, 10.0, unfinished=3), bounds) == "3 tasks unfinished"
    assert failure(Probe(1000, 940, 10.0), bounds) == "offered only 940/s"


def test_the_rate_doubles_until_a_failure_then_the_gap_is_bisected_to_the_precision() -> None:
    bounds = Bounds(precision=1.1, granularity=50)
    assert next_rate(None, None, 500, bounds) == 500
    assert next_rate(1000, None, 500, bounds) == 2000
    assert next_rate(1000, 2000, 500, bounds) == 1500
    assert next_rate(1500, 2000, 500, bounds) == 1750
    assert next_rate(1750, 1900, 500, bounds) is None  # within 10%
    assert next_rate(None, 500, 500, bounds) == 250  # the first rate failed: halve it
    assert next_rate(None, 50, 500, bounds) is None  # nothing below the granularity
    assert next_rate(100, 150, 500, bounds) is None  # no multiple of 50 in between


async def test_search_finds_the_highest_passing_rate_counting_probes_already_made() -> None:
    limit = 1600.0
    made: list[float] = []

    async def probe(rate: float) -> Probe:
        made.append(rate)
        return Probe(rate, rate, 10.0 if rate <= limit else 200.0)

    known = [Probe(500, 500, 5.0), Probe(1000, 1000, 8.0)]
    found = await search(probe, Bounds(), start=500, known=known)
    assert made == [2000, 1500, 1750, 1600]  # 1600 is within 10% of 1750: done
    assert found.highest_passing == 1600
    assert found.lowest_failing == 1750


async def test_search_stops_after_max_probes_and_ignores_a_pass_above_a_failure() -> None:
    async def probe(rate: float) -> Probe:
        return Probe(rate, rate, 10.0 if rate <= 700 else 200.0)

    known = [Probe(500, 500, 5.0), Probe(1000, 1000, 80.0), Probe(2000, 2000, 5.0)]
    found = await search(probe, Bounds(), start=500, known=known, max_probes=1)
    assert [p.rate for p in found.probes] == [500, 1000, 2000, 750]
    assert found.highest_passing == 500
    assert found.lowest_failing == 750
