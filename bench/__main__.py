"""`python -m bench`: every benchmark, each figure printed beside its same-run baseline as a ratio; issue 11's
figures end the report in one table with their targets."""

from __future__ import annotations

import argparse
import asyncio
import logging
import platform
from collections.abc import Sequence

from bench import baseline, budget, capacity, coverage, fairness, guard, pipeline, targets, wakeup, workflows

BASELINE_LATENCY_S = 10.0
"""Longest raw hop latency run: its percentiles settle within 5,000-10,000 messages."""


def main(argv: Sequence[str] | None = None) -> None:
    """Run the raw JetStream baseline, the pipeline, then workflow chains beside single tasks, on fresh
    embedded servers; print the report, ending in issue 11's targets table."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--n", type=int, default=5000, help="messages / tasks per throughput run (default 5000)"
    )
    parser.add_argument(
        "--n-large", type=int, default=20000, help="tasks in a second throughput run, same mesh (0: skip)"
    )
    parser.add_argument(
        "--rates", type=float, nargs="+", default=[500.0, 1000.0], help="offered tasks/s of the latency runs"
    )
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of each latency run (0: skip)")
    parser.add_argument(
        "--probe", type=float, default=8.0, help="seconds per probe of the capacity search (0: skip)"
    )
    parser.add_argument("--max-probes", type=int, default=6, help="probes the capacity search may add")
    parser.add_argument("--p99-bound", type=float, default=50.0, help="capacity: p99 ms it must stay under")
    parser.add_argument(
        "--idle", type=float, default=10.0, help="seconds the mesh is left idle, CPU measured (0: skip)"
    )
    parser.add_argument(
        "--workflows", type=int, default=200, help="five-step chains at once in the workflow run (0: skip)"
    )
    args = parser.parse_args(argv)
    # The harness's own connection logs its disconnect at shutdown; only errors matter here.
    logging.basicConfig(level=logging.ERROR)

    ns = tuple(n for n in (args.n, args.n_large) if n > 0)
    rates = tuple(args.rates)
    sizes = ", ".join(map(str, ns))
    print(f"maestro bench: n={sizes}, python {platform.python_version()}, {platform.machine()}")
    raw = asyncio.run(baseline.run(ns, rates, min(args.duration, BASELINE_LATENCY_S)))
    for raw_run in raw.throughputs:
        print(baseline.describe(raw_run))
    for hop in raw.latencies:
        print(baseline.describe_latency(hop))
    for line in wakeup.describe(asyncio.run(wakeup.run())):
        print(line)
    plan = pipeline.Plan(
        ns=ns,
        rates=rates,
        duration_s=args.duration,
        probe_s=args.probe,
        bounds=capacity.Bounds(p99_ms=args.p99_bound),
        max_probes=args.max_probes,
        idle_s=args.idle,
    )
    result = asyncio.run(pipeline.run(plan))
    for line in pipeline.describe(result):
        print(line)

    print()
    for line in fairness.describe(asyncio.run(fairness.run(args.n))):
        print(line)

    wf = None
    if args.workflows:
        print()
        wf = asyncio.run(workflows.run(args.workflows))
        for line in workflows.describe(wf):
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

    print()
    for line in targets.table(targets.figures(raw, result, wf)):
        print(line)


if __name__ == "__main__":
    main()
