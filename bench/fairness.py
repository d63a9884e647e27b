"""The cost of fair dispatch: the same tasks end to end through a mesh with the dispatcher (priorities,
tenant weights and limits) and through one whose guard hands tasks straight to the agents, first come first
served (MAESTRO_FAIR_DISPATCH=off), each on a fresh server, in alternating rounds so that the machine's drift
falls on both alike.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench import mesh
from bench.pipeline import Throughput, describe_throughput, throughput
from maestro.embedded import running_nats_server
from maestro.runtime import open_bus
from maestro.settings import Settings

UNFAIR = "first come first served"
MODES: dict[str, tuple[bool, int]] = {
    "fair (the default: agents' free slots, at most 256 not started)": (True, 256),
    "fair, at most 32 not started": (True, 32),
    UNFAIR: (False, 256),
}
"""Each mode: fair dispatch on or off, and MAESTRO_DISPATCH_AHEAD."""


@dataclass(frozen=True)
class FairnessResult:
    """Every round's throughput per mode, in the order made."""

    runs: tuple[tuple[str, Throughput], ...]

    def median(self, mode: str) -> float:
        """The median tasks/s of one mode over the rounds."""
        return statistics.median(t.tasks_per_s for m, t in self.runs if m == mode)

    def cost(self, mode: str) -> float:
        """How much less a fair mode moves, as a share of the unfair path's median."""
        unfair = self.median(UNFAIR)
        return 1 - self.median(mode) / unfair if unfair else 0.0


async def _one(n: int, fair: bool, ahead: int, prefix: str) -> Throughput:
    with tempfile.TemporaryDirectory(prefix="maestro-bench-fair-") as tmp:
        root = Path(tmp)
        with running_nats_server(root / "jetstream", log_file=root / "nats-server.log") as server:
            running_mesh = mesh.running(server, root / "maestro", fair_dispatch=fair, dispatch_ahead=ahead)
            async with running_mesh as running:
                harness = Settings(nats_url=server.url, data_dir=str(root), request_timeout_s=10.0)
                async with open_bus(harness, "bench-fairness") as bus:
                    await mesh.wait_serving(running, bus)
                    await throughput(bus, running, 200, f"{prefix}warm-")
                    return await throughput(bus, running, n, prefix)


async def run(n: int, rounds: int = 2) -> FairnessResult:
    """`rounds` alternating rounds of `n` tasks through each mode."""
    runs = []
    for r in range(rounds):
        for m, (mode, (fair, ahead)) in enumerate(MODES.items()):
            runs.append((mode, await _one(n, fair, ahead, f"fair{r}{m}-")))
    return FairnessResult(tuple(runs))


def describe(result: FairnessResult) -> list[str]:
    """The report's lines: each run, then the medians and the cost."""
    lines = []
    for mode, t in result.runs:
        lines.append(f"{mode}:")
        lines += [f"  {line}" for line in describe_throughput(t)]
    unfair = result.median(UNFAIR)
    rounds = len(result.runs) // len(MODES)
    for mode in MODES:
        if mode != UNFAIR:
            lines.append(
                f"{mode}: {result.median(mode):,.0f} tasks/s beside {UNFAIR} {unfair:,.0f} tasks/s "
                f"(median of {rounds} alternating rounds): a cost of {result.cost(mode):.1%} "
                "(target: under 10%)"
            )
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m bench.fairness`: the fair path beside the unfair one."""
    parser = argparse.ArgumentParser(prog="python -m bench.fairness", description=__doc__)
    parser.add_argument("--n", type=int, default=5000, help="tasks per run")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of both modes")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    for line in describe(asyncio.run(run(args.n, args.rounds))):
        print(line)


if __name__ == "__main__":
    main()
