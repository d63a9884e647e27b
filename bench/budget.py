"""Budget reserve+commit pairs per second and their latency, beside raw KV compare-and-set updates.

Budget replicas run as real processes (`python -m services.budget`) on a fresh embedded server; callers in
this process each reserve then commit one task at a time. Runs: 1 and 2 replicas, one hot tenant and 100
tenants. The baseline, in the same run on the same server, is what the budget does underneath: two raw
nats-py KV compare-and-set updates per pair, on one key or 100 keys. The conflict-retry rate (writes that
lost a compare-and-set per write that landed) comes from the replicas' own metrics.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import nats
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import KeyWrongLastSequenceError
from prometheus_client.parser import text_string_to_metric_families

from bench.baseline import percentile
from bench.mesh import service_env
from maestro import topics
from maestro.bus import Bus
from maestro.embedded import running_nats_server
from maestro.runtime import open_bus
from maestro.settings import Settings
from proto.v1 import Commit, Reserve, Usage

_ROOT = Path(__file__).resolve().parent.parent
_USAGE = Usage(model="offline", input_tokens=100, output_tokens=10)  # 450 micro-USD at the default prices


@dataclass(frozen=True)
class Run:
    """What one run measured."""

    name: str
    replicas: int
    tenants: int
    pairs: int
    seconds: float
    p50_ms: float
    p99_ms: float
    conflicts: float = 0.0
    writes: float = 0.0

    @property
    def pairs_per_s(self) -> float:
        """Reserve+commit pairs (or pairs of KV updates) per second."""
        return self.pairs / self.seconds

    @property
    def writes_per_pair(self) -> float:
        """Ledger writes per reserve+commit pair: below 2 when operations share a group-committed write."""
        return self.writes / self.pairs

    @property
    def conflict_rate(self) -> float:
        """Lost compare-and-sets per write that landed."""
        return self.conflicts / self.writes if self.writes else 0.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _spawn(url: str, data_dir: Path, n: int, port: int) -> subprocess.Popen[bytes]:
    env = service_env(url, data_dir, {"MAESTRO_HTTP_PORT": str(port)})
    with open(data_dir / f"budget-{n}.log", "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "services.budget"],
            cwd=_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


@contextlib.asynccontextmanager
async def replicas(url: str, data_dir: Path, count: int) -> AsyncIterator[list[int]]:
    """`count` budget processes; yields their metrics ports; SIGTERM and wait after the block."""
    ports = [_free_port() for _ in range(count)]
    processes = []
    try:
        for n, port in enumerate(ports):
            processes.append(_spawn(url, data_dir, n, port))
        yield ports
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()


async def wait_answering(bus: Bus, count: int, timeout: float = 30.0) -> None:
    """Until `count` budget replicas answer the micro-service ping."""
    await bus.instances(topics.BUDGET_SERVICE, count, within=timeout)


async def scrape(ports: list[int], name: str) -> float:
    """The sum of one metric over every replica."""
    total = 0.0
    async with aiohttp.ClientSession() as session:
        for port in ports:
            async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
                text = await response.text()
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    if sample.name == name:
                        total += sample.value
    return total


async def _callers(concurrency: int, pairs: int, one: object) -> tuple[float, list[float]]:
    latencies: list[float] = []
    left = list(range(pairs))

    async def caller() -> None:
        while left:
            n = left.pop()
            started = time.perf_counter()
            await one(n)  # type: ignore[operator]
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for _ in range(concurrency):
            group.create_task(caller())
    return time.perf_counter() - started, sorted(latencies)


async def measure_budget(
    url: str, data_dir: Path, count: int, tenants: int, pairs: int, concurrency: int, run: str, keyed: bool
) -> Run:
    """`pairs` reserve+commit pairs spread over `tenants` fresh tenants, against `count` replicas.

    `keyed`: callers name the tenant, so each request goes to the replica owning the tenant's partition.
    """
    settings = Settings(nats_url=url, data_dir=str(data_dir), request_timeout_s=30.0)
    names = [f"b{run}-{n}" for n in range(tenants)]
    async with replicas(url, data_dir, count) as ports, open_bus(settings, "bench-budget") as bus:
        await wait_answering(bus, count)
        if keyed:
            # Replicas re-read who owns which partition every second; measure once they agree (until then
            # a request for a partition nobody serves yet costs a no-responders round trip more).
            await asyncio.sleep(2.5)

        async def pair(n: int) -> None:
            tenant, task = names[n % tenants], f"{run}-{n}"
            key = tenant if keyed else None
            reservation = await bus.request(
                topics.BUDGET_RESERVE,
                Reserve(tenant=tenant, task_id=task, estimate_micro_usd=10_000),
                key=key,
            )
            settled = await bus.request(
                topics.BUDGET_COMMIT,
                Commit(tenant=tenant, reservation_id=reservation.reservation_id, usage=_USAGE),
                key=key,
            )
            assert settled.charged_micro_usd == 450, settled

        seconds, lat = await _callers(concurrency, pairs, pair)
        conflicts = await scrape(ports, "maestro_budget_cas_conflicts_total")
        writes = await scrape(ports, "maestro_budget_ledger_writes_total")
    label = "hot tenant" if tenants == 1 else f"{tenants} tenants"
    return Run(
        f"budget {count} replica{'s' if count > 1 else ''}, {label}",
        count,
        tenants,
        pairs,
        seconds,
        percentile(lat, 0.5),
        percentile(lat, 0.99),
        conflicts,
        writes,
    )


async def measure_raw_kv(url: str, tenants: int, pairs: int, concurrency: int) -> Run:
    """The floor: two raw KV compare-and-set updates per pair (re-read and retry on conflict)."""
    nc = await nats.connect(url, name="bench-raw-kv")
    try:
        js = nc.jetstream(timeout=30)
        kv = await js.create_key_value(
            KeyValueConfig(bucket=f"bench_raw_{tenants}", history=1, storage=StorageType.FILE, direct=True)
        )
        revisions = {f"k{n}": await kv.put(f"k{n}", b"{}") for n in range(tenants)}
        value = b'{"tenant":"bench","limit_micro_usd":1000000000000000,"spent_micro_usd":0}' * 3
        conflicts = 0

        async def update(key: str) -> None:
            nonlocal conflicts
            while True:
                try:
                    revisions[key] = await kv.update(key, value, last=revisions[key])
                    return
                except KeyWrongLastSequenceError:
                    conflicts += 1
                    revisions[key] = (await kv.get(key)).revision or 0

        async def pair(n: int) -> None:
            await update(f"k{n % tenants}")
            await update(f"k{n % tenants}")

        seconds, lat = await _callers(concurrency, pairs, pair)
    finally:
        await nc.close()
    label = "1 key" if tenants == 1 else f"{tenants} keys"
    return Run(
        f"raw KV CAS x2, {label}",
        0,
        tenants,
        pairs,
        seconds,
        percentile(lat, 0.5),
        percentile(lat, 0.99),
        conflicts,
        2 * pairs,
    )


async def run(pairs: int, concurrency: int, keyed: bool = True) -> list[Run]:
    """Every run on one fresh embedded server: raw KV first, then the budget's four."""
    with tempfile.TemporaryDirectory(prefix="maestro-bench-budget-") as tmp:
        with running_nats_server(Path(tmp) / "jetstream") as server:
            results = [
                await measure_raw_kv(server.url, 1, pairs, concurrency),
                await measure_raw_kv(server.url, 100, pairs, concurrency),
            ]
            for n, (count, tenants) in enumerate(((1, 1), (2, 1), (1, 100), (2, 100))):
                results.append(
                    await measure_budget(
                        server.url, Path(tmp), count, tenants, pairs, concurrency, str(n), keyed
                    )
                )
            return results


def describe(results: Sequence[Run]) -> list[str]:
    """The report's lines: one per run, the budget beside its raw KV baseline."""
    lines = [
        f"{'budget (reserve+commit pairs)':<40}{'pairs/s':>10}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'conflicts/write':>17}{'writes/pair':>13}"
    ]
    for r in results:
        lines.append(
            f"{r.name:<40}{r.pairs_per_s:>10,.0f}{r.p50_ms:>9.2f}{r.p99_ms:>9.2f}{r.conflict_rate:>17.3f}"
            f"{r.writes_per_pair:>13.2f}"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m bench.budget [--pairs N] [--concurrency C]`."""
    parser = argparse.ArgumentParser(prog="python -m bench.budget", description=__doc__)
    parser.add_argument("--pairs", type=int, default=4000, help="reserve+commit pairs per run")
    parser.add_argument("--concurrency", type=int, default=16, help="callers in flight at once")
    parser.add_argument(
        "--unkeyed", action="store_true", help="callers do not name the tenant: any replica answers"
    )
    args = parser.parse_args(argv)
    for line in describe(asyncio.run(run(args.pairs, args.concurrency, not args.unkeyed))):
        print(line)


if __name__ == "__main__":
    main()
