"""Budget reserve+commit pairs per second and their latency, beside raw KV compare-and-set updates.

Budget replicas run as real processes (`python -m services.budget`) on a fresh embedded server; callers in
this process each reserve then commit one task at a time. Runs: 1 and 2 replicas, one hot tenant and 100
tenants. The baseline, in the same run on the same server, is what the budget does underneath: two raw
nats-py KV compare-and-set updates per pair, on one key or 100 keys. The conflict-retry rate (writes that
lost a compare-and-set per write that landed) comes from the replicas' own metrics, and the replicas' CPU
per pair from their /proc stat (user + system time over the measured pairs).

`--open-holds N` first reserves N holds per tenant that stay open while the pairs run, as a pipeline with
N tasks in flight leaves them: what a ledger costs per operation should not grow with them.
`--expired-holds N` first lets N holds per tenant expire, which the ledger then remembers (for late
commits) beside the open ones.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
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
from proto.v1 import Commit, GetLedger, Reserve, Usage

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
    cpu_s: float = 0.0
    """The replicas' CPU seconds (user + system) over the measured pairs."""

    @property
    def pairs_per_s(self) -> float:
        """Reserve+commit pairs (or pairs of KV updates) per second."""
        return self.pairs / self.seconds

    @property
    def writes_per_pair(self) -> float:
        """Ledger writes per reserve+commit pair: below 2 when operations share a group-committed write."""
        return self.writes / self.pairs

    @property
    def cpu_ms_per_pair(self) -> float:
        """The replicas' CPU milliseconds per reserve+commit pair."""
        return self.cpu_s * 1000 / self.pairs

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


def cpu_seconds(pids: Sequence[int]) -> float:
    """The user + system CPU seconds these processes have used so far (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as stat:
            # After the command's parenthesised name: fields 14 and 15 of proc(5) are utime and stime.
            fields = stat.read().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


@dataclass(frozen=True)
class Replicas:
    """Running budget processes: their metrics ports and process ids."""

    ports: list[int]
    pids: list[int]


@contextlib.asynccontextmanager
async def replicas(url: str, data_dir: Path, count: int) -> AsyncIterator[Replicas]:
    """`count` budget processes; yields their metrics ports and pids; SIGTERM and wait after the block."""
    ports = [_free_port() for _ in range(count)]
    processes = []
    try:
        for n, port in enumerate(ports):
            processes.append(_spawn(url, data_dir, n, port))
        yield Replicas(ports, [p.pid for p in processes])
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
    await bus.discovery.instances(topics.BUDGET_SERVICE, count, within=timeout)


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


async def _callers(
    concurrency: int, pairs: int, one: Callable[[int], Awaitable[None]]
) -> tuple[float, list[float]]:
    latencies: list[float] = []
    left = list(range(pairs))

    async def caller() -> None:
        while left:
            n = left.pop()
            started = time.perf_counter()
            await one(n)
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for _ in range(concurrency):
            group.create_task(caller())
    return time.perf_counter() - started, sorted(latencies)


async def measure_budget(
    url: str,
    data_dir: Path,
    count: int,
    tenants: int,
    pairs: int,
    concurrency: int,
    run: str,
    keyed: bool,
    open_holds: int = 0,
    expired_holds: int = 0,
) -> Run:
    """`pairs` reserve+commit pairs spread over `tenants` fresh tenants, against `count` replicas.

    `keyed`: callers name the tenant, so each request goes to the replica owning the tenant's partition.
    `open_holds`: holds reserved per tenant before the pairs, left open while they run.
    `expired_holds`: holds reserved per tenant before the pairs, left to expire.
    """
    settings = Settings(nats_url=url, data_dir=str(data_dir), request_timeout_s=30.0)
    names = [f"b{run}-{n}" for n in range(tenants)]
    async with replicas(url, data_dir, count) as procs, open_bus(settings, "bench-budget") as bus:
        ports = procs.ports
        await wait_answering(bus, count)
        if keyed:
            # Replicas re-read who owns which partition every second; measure once they agree (until then
            # a request for a partition nobody serves yet costs a no-responders round trip more).
            await asyncio.sleep(2.5)

        def holder(kind: str, ttl_s: float) -> Callable[[int], Awaitable[None]]:
            async def hold(n: int) -> None:
                tenant = names[n % tenants]
                reserve = Reserve(
                    tenant=tenant, task_id=f"{run}-{kind}-{n}", estimate_micro_usd=10_000, ttl_s=ttl_s
                )
                await bus.calls.request(topics.BUDGET_RESERVE, reserve, key=tenant if keyed else None)

            return hold

        if expired_holds:
            await _callers(64, expired_holds * tenants, holder("expired", 1.0))
            await asyncio.sleep(1.5)
            for tenant in names:  # a touch, so the replica moves them from the open holds to the expired
                await bus.calls.request(
                    topics.BUDGET_GET, GetLedger(tenant=tenant), key=tenant if keyed else None
                )
        await _callers(64, open_holds * tenants, holder("open", 3600.0))

        async def pair(n: int) -> None:
            tenant, task = names[n % tenants], f"{run}-{n}"
            key = tenant if keyed else None
            reservation = await bus.calls.request(
                topics.BUDGET_RESERVE,
                Reserve(tenant=tenant, task_id=task, estimate_micro_usd=10_000),
                key=key,
            )
            settled = await bus.calls.request(
                topics.BUDGET_COMMIT,
                Commit(tenant=tenant, reservation_id=reservation.reservation_id, usage=_USAGE),
                key=key,
            )
            assert settled.charged_micro_usd == 450, settled

        writes_before = await scrape(ports, "maestro_budget_ledger_writes_total")
        conflicts_before = await scrape(ports, "maestro_budget_cas_conflicts_total")
        cpu_before = cpu_seconds(procs.pids)
        seconds, lat = await _callers(concurrency, pairs, pair)
        cpu = cpu_seconds(procs.pids) - cpu_before
        conflicts = await scrape(ports, "maestro_budget_cas_conflicts_total") - conflicts_before
        writes = await scrape(ports, "maestro_budget_ledger_writes_total") - writes_before
    label = "hot tenant" if tenants == 1 else f"{tenants} tenants"
    if open_holds:
        label += f", {open_holds} open"
    if expired_holds:
        label += f", {expired_holds} expired"
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
        cpu,
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


SETUPS = ((1, 1), (2, 1), (1, 100), (2, 100))
"""The budget's runs: (replicas, tenants)."""


async def run(
    pairs: int,
    concurrency: int,
    keyed: bool = True,
    open_holds: int = 0,
    setups: Sequence[tuple[int, int]] = SETUPS,
    raw: bool = True,
    expired_holds: int = 0,
) -> list[Run]:
    """Every run on one fresh embedded server: raw KV first (unless not `raw`), then the budget's `setups`."""
    with tempfile.TemporaryDirectory(prefix="maestro-bench-budget-") as tmp:
        with running_nats_server(Path(tmp) / "jetstream") as server:
            results = []
            if raw:
                results += [
                    await measure_raw_kv(server.url, 1, pairs, concurrency),
                    await measure_raw_kv(server.url, 100, pairs, concurrency),
                ]
            for n, (count, tenants) in enumerate(setups):
                results.append(
                    await measure_budget(
                        server.url,
                        Path(tmp),
                        count,
                        tenants,
                        pairs,
                        concurrency,
                        str(n),
                        keyed,
                        open_holds,
                        expired_holds,
                    )
                )
            return results


def describe(results: Sequence[Run]) -> list[str]:
    """The report's lines: one per run, the budget beside its raw KV baseline."""
    lines = [
        f"{'budget (reserve+commit pairs)':<50}{'pairs/s':>10}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'conflicts/write':>17}{'writes/pair':>13}{'CPU ms/pair':>13}"
    ]
    for r in results:
        cpu = f"{r.cpu_ms_per_pair:>13.3f}" if r.cpu_s else f"{'-':>13}"
        lines.append(
            f"{r.name:<50}{r.pairs_per_s:>10,.0f}{r.p50_ms:>9.2f}{r.p99_ms:>9.2f}{r.conflict_rate:>17.3f}"
            f"{r.writes_per_pair:>13.2f}{cpu}"
        )
    return lines


def _setups(text: str) -> list[tuple[int, int]]:
    """`1x1,2x100` as [(1, 1), (2, 100)]: replicas x tenants."""
    try:
        return [(int(r), int(t)) for r, t in (one.split("x") for one in text.split(","))]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give REPLICASxTENANTS[,...], as 1x1,2x100") from None


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m bench.budget [--pairs N] [--concurrency C] [--open-holds H] [--setups 1x1,...]`."""
    parser = argparse.ArgumentParser(prog="python -m bench.budget", description=__doc__)
    parser.add_argument("--pairs", type=int, default=4000, help="reserve+commit pairs per run")
    parser.add_argument("--concurrency", type=int, default=16, help="callers in flight at once")
    parser.add_argument(
        "--unkeyed", action="store_true", help="callers do not name the tenant: any replica answers"
    )
    parser.add_argument(
        "--open-holds", type=int, default=0, help="holds per tenant reserved first, left open during the run"
    )
    parser.add_argument(
        "--setups",
        type=_setups,
        default=list(SETUPS),
        help="the budget runs as REPLICASxTENANTS, comma-separated (default: 1x1,2x1,1x100,2x100)",
    )
    parser.add_argument(
        "--expired-holds", type=int, default=0, help="holds per tenant left to expire first, then remembered"
    )
    parser.add_argument("--no-raw", action="store_true", help="skip the raw KV baseline runs")
    args = parser.parse_args(argv)
    results = asyncio.run(
        run(
            args.pairs,
            args.concurrency,
            not args.unkeyed,
            args.open_holds,
            args.setups,
            not args.no_raw,
            args.expired_holds,
        )
    )
    for line in describe(results):
        print(line)


if __name__ == "__main__":
    main()
