"""The highest offered rate the mesh serves with p99 submit -> succeeded under a bound.

Probes at fixed offered rates: the rate doubles from the start until a probe fails, then the gap between
the highest passing and the lowest failing rate is bisected until their ratio is within `precision`. A
probe fails when its p99 reaches the bound, when tasks are left unfinished, or when the harness offered
more than `shortfall` below the rate asked (the harness, on the same cores, could not keep up).
next_rate() is the pure part; search() runs it against a probe function.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar


class Measured(Protocol):
    """What a probe at one offered rate reports (bench.pipeline.Latency is one)."""

    @property
    def rate(self) -> float: ...
    @property
    def achieved_rate(self) -> float: ...
    @property
    def p99_ms(self) -> float: ...
    @property
    def unfinished(self) -> int: ...


M = TypeVar("M", bound=Measured)


@dataclass(frozen=True)
class Bounds:
    """What a passing probe must meet, and how fine the search goes."""

    p99_ms: float = 50.0
    """p99 submit -> succeeded must stay below this."""
    shortfall: float = 0.05
    """The achieved offered rate may fall this fraction short of the rate asked, no more."""
    precision: float = 1.1
    """Bisection stops once the lowest failing rate is within this factor of the highest passing one."""
    granularity: float = 50.0
    """Rates probed are multiples of this many tasks/s."""


def failure(probe: Measured, bounds: Bounds) -> str | None:
    """Why a probe fails the bounds, or None when it passes."""
    if probe.unfinished:
        return f"{probe.unfinished} tasks unfinished"
    if probe.achieved_rate < probe.rate * (1 - bounds.shortfall):
        return f"offered only {probe.achieved_rate:,.0f}/s"
    if not probe.p99_ms < bounds.p99_ms:  # a NaN p99 (nothing finished) fails too
        return f"p99 {probe.p99_ms:.1f} ms"
    return None


def next_rate(passed: float | None, failed: float | None, start: float, bounds: Bounds) -> float | None:
    """The next rate to probe, given the highest passing and the lowest failing rate so far; None once
    the search is done (the gap is within bounds.precision, or even the granularity fails)."""
    if failed is None:
        return start if passed is None else 2 * passed
    if passed is None:
        lower = _rounded(failed / 2, bounds)
        return lower if lower < failed else None
    if failed / passed <= bounds.precision:
        return None
    middle = _rounded((passed + failed) / 2, bounds)
    return middle if passed < middle < failed else None


def _rounded(rate: float, bounds: Bounds) -> float:
    return max(bounds.granularity, round(rate / bounds.granularity) * bounds.granularity)


@dataclass(frozen=True)
class Search(Generic[M]):
    """Every probe in the order made (the known ones first) and the bounds they were judged by."""

    probes: tuple[M, ...]
    bounds: Bounds

    @property
    def highest_passing(self) -> float | None:
        """The highest passing rate below the lowest failing one (None when none passed)."""
        failed = self.lowest_failing
        passing = [p.rate for p in self.probes if failure(p, self.bounds) is None]
        below = [rate for rate in passing if failed is None or rate < failed]
        return max(below, default=None)

    @property
    def lowest_failing(self) -> float | None:
        """The lowest rate whose probe failed (None when every probe passed)."""
        return min((p.rate for p in self.probes if failure(p, self.bounds) is not None), default=None)


async def search(
    probe: Callable[[float], Awaitable[M]],
    bounds: Bounds,
    *,
    start: float,
    known: Sequence[M] = (),
    max_probes: int = 8,
) -> Search[M]:
    """Probe rates chosen by next_rate() until it is done or `max_probes` new probes were made; probes
    already made (`known`) count as if this search had made them."""
    found = Search(tuple(known), bounds)
    for _ in range(max_probes):
        rate = next_rate(found.highest_passing, found.lowest_failing, start, bounds)
        if rate is None or any(p.rate == rate for p in found.probes):
            break
        found = Search((*found.probes, await probe(rate)), bounds)
    return found
