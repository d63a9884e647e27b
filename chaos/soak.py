"""`python -m chaos.soak [--minutes 10] [--rate 10]`: a steady load for a long while; every process's memory
and open files at the start (after a minute's warm-up) and at the end, each bounded; then the invariants.

Bounds (growth from start to end, once every task has ended): a Maestro service at most 48 MiB and 16
open files; nats-server at most 128 MiB (its stores grow with the audit log) and 16 open files.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from chaos import processes, table
from chaos.drill import Plan, Stage, drill
from chaos.invariants import Report

SERVICE_RSS_MIB = 48
NATS_RSS_MIB = 128
OPEN_FILES = 16
WARM_UP_S = 60.0
_PROGRESS_S = 60.0


@dataclass(frozen=True)
class Usage:
    """One process's resident memory (KiB) and open file descriptors."""

    rss_kib: int
    files: int


def usage(stage: Stage) -> dict[str, Usage]:
    """Every mesh process's usage now, by name."""
    found = {}
    for member in stage.mesh.members():
        rss, files = processes.rss_kib(member.pid), processes.open_files(member.pid)
        if rss is not None and files is not None:
            found[member.name] = Usage(rss, files)
    return found


def growth(start: dict[str, Usage], end: dict[str, Usage]) -> list[str]:
    """A violation for each process that grew past its bound (or was replaced: a restart is news too)."""
    found = []
    for name, first in sorted(start.items()):
        last = end.get(name)
        if last is None:
            found.append(f"{name}: gone by the end (restarted?)")
            continue
        bound = NATS_RSS_MIB if name == "nats-server" else SERVICE_RSS_MIB
        grew = (last.rss_kib - first.rss_kib) / 1024
        if grew > bound:
            found.append(f"{name}: memory grew {grew:.0f} MiB (bound {bound})")
        if last.files - first.files > OPEN_FILES:
            found.append(f"{name}: open files grew {first.files} → {last.files} (bound +{OPEN_FILES})")
    return found


def render(label: str, seen: dict[str, Usage]) -> str:
    """One line: each process's memory and open files."""
    cells = ", ".join(f"{n} {u.rss_kib / 1024:.0f} MiB {u.files} fds" for n, u in sorted(seen.items()))
    return f"{label}: {cells}"


@dataclass
class Watch:
    """Usage at the start and the end of a soak, printed as it goes."""

    start: dict[str, Usage] = field(default_factory=dict)

    async def during(self, stage: Stage) -> None:
        """From the end of the warm-up until the load is over: usage now, then every minute."""
        self.start = usage(stage)
        print(render("start", self.start), flush=True)
        while not stage.load.finished:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stage.load.done(), _PROGRESS_S)
            print(render(f"{stage.load.answered} submitted", usage(stage)), flush=True)

    async def after(self, stage: Stage) -> None:
        """Once every task ended: usage at the end, judged against the start."""
        end = usage(stage)
        print(render("end", end), flush=True)
        stage.notes.append(render("start", self.start))
        stage.notes.append(render("end", end))
        stage.violations += growth(self.start, end)


async def soak(workdir: Path, minutes: float, rate: float) -> Report:
    """Run the soak in `workdir`."""
    seconds = minutes * 60
    plan = Plan(
        tasks=int(seconds * rate),
        rate=rate,
        sleep_s=0.1,
        fault_at=min(WARM_UP_S / seconds, 0.5),
        converge_s=60.0,
    )
    watch = Watch()
    return await drill("soak", workdir, plan, watch.during, after=watch.after)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of `python -m chaos.soak`."""
    parser = argparse.ArgumentParser(prog="python -m chaos.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=10.0, help="tasks submitted per second")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    logging.getLogger("maestro.runtime").setLevel(logging.ERROR)
    base = Path(tempfile.mkdtemp(prefix="maestro-soak-"))
    print(f"soak: {args.minutes:g} minutes at {args.rate:g} tasks/s, working in {base}", flush=True)
    started = time.monotonic()
    report = asyncio.run(soak(base, args.minutes, args.rate))
    print(f"\n{time.monotonic() - started:.0f}s\n{table.render([report])}", flush=True)
    if report.ok:
        shutil.rmtree(base, ignore_errors=True)
    else:
        print(f"logs and store: {base}")
    sys.exit(0 if report.ok else 1)


if __name__ == "__main__":
    main()
