"""The cost of fair dispatch: the same tasks end to end through a mesh with the dispatcher (priorities,
tenant weights and limits) and through one whose guard hands tasks straight to the agents, first come first
served (MAESTRO_FAIR_DISPATCH=off), each on a fresh server, in rounds whose order turns around every other
round (A B, B A, ...) so that the machine's drift falls on every mode alike.

The cost is read per round, each fair run beside the unfair run of its own round, and the median of those
ratios is reported: on a shared two-core machine the throughput of one mode moves by 10-15 % between runs
minutes apart, and a median of medians taken from different minutes can show a cost (or a gain) that is
only that drift. The mesh's CPU per task (services and nats-server) is reported beside it: on a machine the
mesh keeps busy, that is what the dispatcher really costs.
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

from bench import mesh, messages
from bench.pipeline import Throughput, describe_throughput, throughput
from maestro.embedded import running_nats_server
from maestro.runtime import open_bus
from maestro.settings import Settings

UNFAIR = "first come first served"
DEFAULT = "fair (the default: agents' free slots, at most 256 not started)"
MODES: dict[str, tuple[bool, int]] = {
    DEFAULT: (True, 256),
    "fair, at most 32 not started": (True, 32),
    UNFAIR: (False, 256),
}
"""Each mode: fair dispatch on or off, and MAESTRO_DISPATCH_AHEAD."""
SIDE_ROUNDS = 2
"""How many of the rounds also run the modes other than the default and the unfair path: the target is the
default's cost, so the rounds go to making its median steady (one round's cost moves by about 10 points)."""


@dataclass(frozen=True)
class FairnessResult:
    """Every round's throughput per mode, in the order made."""

    runs: tuple[tuple[int, str, Throughput], ...]
    """(round, mode, what it moved), in the order made."""

    def of(self, mode: str) -> list[Throughput]:
        """One mode's runs, round by round."""
        return [t for _, m, t in self.runs if m == mode]

    def rounds(self, mode: str) -> int:
        """How many rounds ran `mode`."""
        return len(self.of(mode))

    def median(self, mode: str) -> float:
        """The median tasks/s of one mode over the rounds."""
        return statistics.median(t.tasks_per_s for t in self.of(mode))

    def costs(self, mode: str) -> list[float]:
        """Per round: how much less a fair mode moved than the unfair path of the same round."""
        unfair = {r: t for r, m, t in self.runs if m == UNFAIR}
        return [1 - t.tasks_per_s / unfair[r].tasks_per_s for r, m, t in self.runs if m == mode]

    def cost(self, mode: str) -> float:
        """The median of the per-round costs."""
        return statistics.median(self.costs(mode))

    def messages(self, mode: str) -> float | None:
        """The median NATS messages per task the services exchanged with the server in one mode's runs
        (the same run after run, unlike throughput and CPU); None when the server did not count them."""
        counts = [
            messages.total(t.messages, leave_out=(messages.HARNESS,)).total / t.n
            for t in self.of(mode)
            if t.messages
        ]
        return statistics.median(counts) if counts else None

    def cpu_ms(self, mode: str) -> float:
        """The median CPU milliseconds per task of one mode, over the services and nats-server."""
        return statistics.median(
            1000 * (mesh.services_cpu(t.cpu_s) + t.cpu_s.get(mesh.NATS_SERVER, 0.0)) / t.n
            for t in self.of(mode)
        )


async def _one(n: int, fair: bool, ahead: int, prefix: str) -> Throughput:
    with tempfile.TemporaryDirectory(prefix="maestro-bench-fair-") as tmp:
        root = Path(tmp)
        with running_nats_server(
            root / "jetstream", log_file=root / "nats-server.log", monitored=True
        ) as server:
            running_mesh = mesh.running(server, root / "maestro", fair_dispatch=fair, dispatch_ahead=ahead)
            async with running_mesh as running:
                harness = Settings(nats_url=server.url, data_dir=str(root), request_timeout_s=10.0)
                async with open_bus(harness, "bench-fairness") as bus:
                    await mesh.wait_serving(running, bus)
                    await throughput(bus, running, 200, f"{prefix}warm-")
                    return await throughput(bus, running, n, prefix)


async def run(n: int, rounds: int = 6) -> FairnessResult:
    """`rounds` rounds of `n` tasks through the default and the unfair path (the first SIDE_ROUNDS of them
    through every mode), the order turned around every other round."""
    runs = []
    for r in range(rounds):
        modes = [(mode, how) for mode, how in MODES.items() if r < SIDE_ROUNDS or mode in (DEFAULT, UNFAIR)]
        for m, (mode, (fair, ahead)) in enumerate(modes if r % 2 == 0 else modes[::-1]):
            runs.append((r, mode, await _one(n, fair, ahead, f"fair{r}{m}-")))
    return FairnessResult(tuple(runs))


def describe(result: FairnessResult) -> list[str]:
    """The report's lines: each run, then the medians and the cost."""
    lines = []
    for _, mode, t in result.runs:
        lines.append(f"{mode}:")
        lines += [f"  {line}" for line in describe_throughput(t)]
    unfair = result.median(UNFAIR)
    unfair_cpu = result.cpu_ms(UNFAIR)
    unfair_messages = result.messages(UNFAIR)
    for mode in MODES:
        if mode != UNFAIR:
            per_round = ", ".join(f"{cost:.1%}" for cost in result.costs(mode))
            cpu = result.cpu_ms(mode)
            lines.append(
                f"{mode}: {result.median(mode):,.0f} tasks/s beside {UNFAIR} {unfair:,.0f} tasks/s "
                f"(medians of {result.rounds(mode)} and {result.rounds(UNFAIR)} rounds); cost per round "
                f"{per_round}: median {result.cost(mode):.1%} "
                f"(target: under 10%); mesh CPU {cpu:.2f} ms/task beside {unfair_cpu:.2f} "
                f"({cpu / unfair_cpu - 1:+.1%})"
                + (
                    f"; services' NATS messages {sent:.1f} per task beside {unfair_messages:.1f} "
                    f"({sent - unfair_messages:+.1f})"
                    if (sent := result.messages(mode)) is not None and unfair_messages is not None
                    else ""
                )
            )
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m bench.fairness`: the fair path beside the unfair one."""
    parser = argparse.ArgumentParser(prog="python -m bench.fairness", description=__doc__)
    parser.add_argument("--n", type=int, default=5000, help="tasks per run")
    parser.add_argument("--rounds", type=int, default=6, help="rounds of the default and the unfair path")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    for line in describe(asyncio.run(run(args.n, args.rounds))):
        print(line)


if __name__ == "__main__":
    main()
