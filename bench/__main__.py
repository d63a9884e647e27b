"""`python -m bench`: every benchmark, each figure printed beside its same-run baseline as a ratio."""

from __future__ import annotations

import argparse
import asyncio
import logging
import platform
from collections.abc import Sequence

from bench import baseline, budget, coverage, guard, pipeline, workflows


def row(figure: str, value: float, base: float, fmt: str) -> str:
    """One line of the comparison table."""
    return f"{figure:<40}{value:>12{fmt}}{base:>12{fmt}}{value / base:>10.3f}"


def main(argv: Sequence[str] | None = None) -> None:
    """Run the raw JetStream baseline, the pipeline, then workflow chains beside single tasks, on fresh
    embedded servers; print the report."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--n", type=int, default=5000, help="messages / tasks per throughput run (default 5000)"
    )
    parser.add_argument("--rate", type=float, default=200.0, help="offered tasks/s in the latency runs")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of each latency run (0: skip)")
    parser.add_argument(
        "--workflows", type=int, default=200, help="five-step chains at once in the workflow run (0: skip)"
    )
    args = parser.parse_args(argv)
    # The harness's own connection logs its disconnect at shutdown; only errors matter here.
    logging.basicConfig(level=logging.ERROR)

    print(f"maestro bench: n={args.n}, python {platform.python_version()}, {platform.machine()}")
    raw, raw_lat = asyncio.run(baseline.run(args.n, args.rate, args.duration))
    print(baseline.describe(raw))
    if raw_lat is not None:
        print(baseline.describe_latency(raw_lat))
    result = asyncio.run(pipeline.run(args.n, args.rate, args.duration))
    for line in pipeline.describe(result):
        print(line)

    print()
    print(f"{'figure (baseline: raw nats-py JetStream)':<40}{'value':>12}{'baseline':>12}{'ratio':>10}")
    print(row("pipeline tasks/s vs msgs/s", result.throughput.tasks_per_s, raw.msgs_per_s, ",.0f"))
    lat = result.latency
    if lat is not None and raw_lat is not None:
        print(row(f"p50 ms submit->succeeded @{lat.rate:.0f}/s vs hop", lat.p50_ms, raw_lat.p50_ms, ".2f"))
        print(row(f"p99 ms submit->succeeded @{lat.rate:.0f}/s vs hop", lat.p99_ms, raw_lat.p99_ms, ".2f"))
    unfinished = result.throughput.unfinished + (lat.unfinished if lat is not None else 0)
    print(f"{'tasks not finished (must be 0)':<40}{unfinished:>12}")

    if args.workflows:
        print()
        for line in workflows.describe(asyncio.run(workflows.run(args.workflows))):
            print(line)

    print()
    for line in budget.describe(asyncio.run(budget.run(args.n, concurrency=16))):
        print(line)

    print()
    for line in guard.report():
        print(line)

    print()
    for line in coverage.describe(coverage.run()):
        print(line)


if __name__ == "__main__":
    main()
