"""`python -m chaos [--only NAME,...] [--repeat N]`: run the fault scenarios, print the table, exit 1 on
any violation."""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from chaos import table
from chaos.invariants import Report
from chaos.mesh import MeshError
from chaos.scenarios import SCENARIOS, Scenario, named

SCENARIO_LIMIT_S = 120.0
"""Each scenario ends by itself well before this; past it, the scenario is stopped and reported."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__)
    parser.add_argument("--only", metavar="NAME[,NAME]", help="run these scenarios (default: all)")
    parser.add_argument("--repeat", type=int, default=1, metavar="N", help="run the suite N times")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    parser.add_argument("--keep", action="store_true", help="keep every scenario's directory (logs, store)")
    return parser


async def run_one(scenario: Scenario, workdir: Path) -> Report:
    """Run one scenario within its time limit; a scenario that cannot run is a failed row, not a crash."""
    started = time.monotonic()
    try:
        async with asyncio.timeout(SCENARIO_LIMIT_S):
            return await scenario.run(workdir)
    except TimeoutError:
        reason = f"did not end within {SCENARIO_LIMIT_S:.0f}s"
    except MeshError as exc:
        reason = f"mesh: {exc}"
    except Exception as exc:
        # The suite goes on to the next scenario; this one fails, with the traceback on stderr.
        traceback.print_exc()
        reason = f"the scenario itself failed: {exc!r}"
    return Report(scenario.name, seconds=time.monotonic() - started, violations=(reason,))


async def run_suite(scenarios: Sequence[Scenario], base: Path, *, keep: bool) -> list[Report]:
    """Run the scenarios one after another, each on a fresh mesh in its own directory under `base`."""
    reports = []
    for scenario in scenarios:
        workdir = base / scenario.name
        print(f"{scenario.name}: {scenario.what} ...", flush=True)
        report = await run_one(scenario, workdir)
        verdict = "ok" if report.ok else f"FAIL: {'; '.join(report.violations)}"
        print(f"{scenario.name}: {verdict} ({report.seconds:.0f}s)", flush=True)
        if report.ok and not keep:
            shutil.rmtree(workdir, ignore_errors=True)
        reports.append(report)
    return reports


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of `python -m chaos`."""
    args = _parser().parse_args(argv)
    if args.list:
        for scenario in SCENARIOS:
            print(f"{scenario.name:<20}{scenario.what}")
        return
    try:
        scenarios = named(args.only.split(",")) if args.only else list(SCENARIOS)
    except KeyError as exc:
        print(f"chaos: {exc.args[0]}", file=sys.stderr)
        sys.exit(2)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    # The harness's own client reconnects through every nats-server kill; that is expected, not news.
    logging.getLogger("maestro.runtime").setLevel(logging.ERROR)
    base = Path(tempfile.mkdtemp(prefix="maestro-chaos-"))
    print(f"working in {base}", flush=True)
    failed = False
    for round_ in range(1, args.repeat + 1):
        started = time.monotonic()
        reports = asyncio.run(run_suite(scenarios, base / f"round-{round_}", keep=args.keep))
        title = f"round {round_} of {args.repeat}: " if args.repeat > 1 else ""
        print(f"\n{title}{time.monotonic() - started:.0f}s\n{table.render(reports)}\n", flush=True)
        failed |= not all(r.ok for r in reports)
    if not failed and not args.keep:
        shutil.rmtree(base, ignore_errors=True)
    else:
        print(f"logs and stores of failed scenarios: {base}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
