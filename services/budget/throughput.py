"""Measure budget ops/s on one hot tenant: `python -m services.budget.throughput [--tasks N] [--replicas R]`.

Starts its own nats-server, runs R budget replicas in this process, and has `--concurrency` callers each
reserve then commit one task at a time (two ops per task) until N tasks are done. Callers and replicas
share this one process, so the figure is a floor for replicas running as their own processes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry

from maestro import topics
from maestro.bus import Bus
from maestro.embedded import running_nats_server
from maestro.runtime import open_bus
from maestro.settings import Settings
from proto.v1 import Commit, GetLedger, Reserve, Usage
from services.budget.service import serve


@dataclass(frozen=True)
class Result:
    """What one run measured."""

    replicas: int
    ops: int
    seconds: float
    cas_conflicts: float
    spent_micro_usd: int

    @property
    def ops_per_s(self) -> float:
        """Budget operations answered per second."""
        return self.ops / self.seconds


@contextlib.asynccontextmanager
async def replica(settings: Settings, registry: CollectorRegistry, n: int) -> AsyncIterator[None]:
    """One budget replica on its own connection, stopped and drained when the block ends."""
    async with open_bus(settings, f"budget-{n}", registry) as bus:
        serving = asyncio.create_task(serve(bus))
        try:
            yield
        finally:
            bus.stop()
            await serving


async def caller(bus: Bus, tenant: str, tasks: list[str]) -> None:
    """Reserve then commit each task whose id this caller pops, until none are left."""
    usage = Usage(model="offline", input_tokens=100, output_tokens=10)
    while tasks:
        task_id = tasks.pop()
        reservation = await bus.request(
            topics.BUDGET_RESERVE, Reserve(tenant=tenant, task_id=task_id, estimate_micro_usd=10_000)
        )
        await bus.request(
            topics.BUDGET_COMMIT,
            Commit(tenant=tenant, reservation_id=reservation.reservation_id, usage=usage),
        )


async def measure(settings: Settings, replicas: int, tasks: int, concurrency: int, run: str) -> Result:
    """Run `tasks` reserve+commit pairs against `replicas` replicas; tenants are fresh per run."""
    tenant = f"hot-{run}"
    registries = [CollectorRegistry() for _ in range(replicas)]
    async with contextlib.AsyncExitStack() as stack:
        for n, registry in enumerate(registries):
            await stack.enter_async_context(replica(settings, registry, n))
        client = await stack.enter_async_context(open_bus(settings, "throughput"))
        await client.request(topics.BUDGET_GET, GetLedger(tenant=tenant))
        ids = [f"{run}-{n}" for n in range(tasks)]
        started = time.perf_counter()
        async with asyncio.TaskGroup() as group:
            for _ in range(concurrency):
                group.create_task(caller(client, tenant, ids))
        seconds = time.perf_counter() - started
        view = await client.request(topics.BUDGET_GET, GetLedger(tenant=tenant))
    return Result(
        replicas=replicas,
        ops=2 * tasks,
        seconds=seconds,
        cas_conflicts=sum(
            r.get_sample_value("maestro_budget_cas_conflicts_total") or 0.0 for r in registries
        ),
        spent_micro_usd=view.spent_micro_usd,
    )


async def _main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="maestro-budget-") as tmp:
        with running_nats_server(Path(tmp) / "jetstream") as server:
            settings = Settings(nats_url=server.url, data_dir=tmp, default_limit_micro_usd=10**15)
            for run, replicas in enumerate(args.replicas):
                result = await measure(settings, replicas, args.tasks, args.concurrency, str(run))
                assert result.spent_micro_usd == args.tasks * 450, "every commit charged exactly once"
                print(
                    f"replicas={result.replicas} ops={result.ops} seconds={result.seconds:.2f} "
                    f"ops/s={result.ops_per_s:,.0f} cas_conflicts={result.cas_conflicts:.0f}"
                )


def main() -> None:
    """Parse the flags and print one line per replica count."""
    logging.basicConfig(level=logging.ERROR)  # the replicas' disconnect warnings on shutdown are noise here
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tasks", type=int, default=5000, help="reserve+commit pairs per run")
    parser.add_argument("--concurrency", type=int, default=256, help="callers in flight at once")
    parser.add_argument(
        "--replicas", type=int, nargs="+", default=[1, 2], help="replica counts to measure, one run each"
    )
    asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
