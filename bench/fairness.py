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

MODES = {"fair": True, "first come first served": False}


@dataclass(frozen=True)
class FairnessResult:
    """Every round's throughput per mode, in the order made."""

    runs: tuple[tuple[str, Throughput], ...]

    def median(self, mode: str) -> float:
        """The median tasks/s of one mode over the rounds."""
        return statistics.median(t.tasks_per_s for m, t in self.runs if m == mode)

    @property
    def cost(self) -> float:
        """How much less the fair path moves, as a share of the unfair path's median."""
        unfair = self.median("first come first served")
        return 1 - self.median("fair") / unfair if unfair else 0.0


async def _one(n: int, fair: bool, prefix: str) -> Throughput:
    with tempfile.TemporaryDirectory(prefix="maestro-bench-fair-") as tmp:
        root = Path(tmp)
        with running_nats_server(root / "jetstream", log_file=root / "nats-server.log") as server:
            async with mesh.running(server, root / "maestro", fair_dispatch=fair) as running:
                harness = Settings(nats_url=server.url, data_dir=str(root), request_timeout_s=10.0)
                async with open_bus(harness, "bench-fairness") as bus:
                    await mesh.wait_serving(running, bus)
                    await throughput(bus, running, 200, f"{prefix}warm-")
                    return await throughput(bus, running, n, prefix)


async def run(n: int, rounds: int = 2) -> FairnessResult:
    """`rounds` alternating rounds of `n` tasks through each mode."""
    runs = []
    for r in range(rounds):
        for mode, fair in MODES.items():
            runs.append((mode, await _one(n, fair, f"fair{r}{int(fair)}-")))
    return FairnessResult(tuple(runs))


def describe(result: FairnessResult) -> list[str]:
    """The report's lines: each run, then the medians and the cost."""
    lines = []
    for mode, t in result.runs:
        lines.append(f"{mode}:")
        lines += [f"  {line}" for line in describe_throughput(t)]
    fair, unfair = result.median("fair"), result.median("first come first served")
    lines.append(
        f"fair dispatch: {fair:,.0f} tasks/s beside first come first served {unfair:,.0f} tasks/s "
        f"(median of {len(result.runs) // 2} alternating rounds): a cost of {result.cost:.1%} "
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
