"""Trivial tasks through the real mesh: guard -> budget -> agents -> orchestrator, as child processes.

Throughput: N tasks submitted at once; the clock stops when every one has a Succeeded event, every
TaskRecord in `maestro_tasks` reads succeeded, and the tenant's ledger has spent > 0 with nothing held.
Made for each N of the plan on the one mesh (5,000, then 20,000).
Latency: tasks offered at a fixed rate for a while (500 and 1,000 tasks/s for 30 s), submit -> Succeeded
event and submit -> succeeded record, p50 and p99.
Capacity: the highest offered rate whose p99 submit -> Succeeded stays under 50 ms (bench/capacity.py),
the latency runs counting as its first probes.
Idle: each process's CPU while the mesh, done with everything, has nothing to do.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nats.js.api import PubAck

from bench import capacity, mesh, messages
from bench.baseline import percentile
from bench.mesh import BenchMesh, CpuMeter
from bench.messages import MessageMeter, Traffic
from bench.schedule import on_schedule
from bench.tracker import Tracker, read_ledger, record_states, settled_ledger
from maestro import codec, topics
from maestro.bus import Bus
from maestro.embedded import running_nats_server
from maestro.runtime import open_bus
from maestro.settings import Settings
from proto.v1 import LedgerView, Role, TaskRecord, TaskRequest

TENANT = "bench"
ROLE: Role = "tester"
"""A tester task with no commands: the least a role does (one model call, a one-line report, nothing run), so
the runs measure what the mesh does per task, as the peers' no-op jobs do. (A planner task now answers,
validates and scans a whole structured plan: 0.5 ms more of an agent's CPU.)"""
PROMPT = "Report on the task"
# The hops a task goes through, as the harness sees them: (from, to, what happens in between).
_STAGES = (
    ("submitted", "queued", "request stored, guard pulls it, judges it, holds its estimate, stores Queued"),
    ("queued", "started", "guard stores the assignment, an agent pulls it, stores Started"),
    ("started", "succeeded", "agent works, commits usage to the budget, stores Succeeded"),
    ("succeeded", "recorded", "orchestrator pulls Succeeded, writes the record"),
)


@dataclass(frozen=True)
class Throughput:
    """N tasks submitted at once, until all succeeded, recorded and paid for."""

    n: int
    submit_s: float
    total_s: float
    unfinished: int
    ended_badly: int
    records_succeeded: int
    ledger: LedgerView | None
    cpu_s: dict[str, float]
    messages: dict[str, Traffic] | None = None
    """NATS messages per client over the run, as the server counted them (when it was asked)."""

    @property
    def tasks_per_s(self) -> float:
        """Tasks end to end per second of wall time."""
        return self.n / self.total_s


@dataclass(frozen=True)
class Latency:
    """Tasks offered at a fixed rate: submit -> Succeeded event."""

    rate: float
    offered: int
    achieved_rate: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    unfinished: int
    recorded_p50_ms: float
    """submit -> the task's record reads succeeded."""
    recorded_p99_ms: float
    unrecorded: int
    wall_s: float
    """From the first submit to the end of the wait for the last task."""
    cpu_s: dict[str, float]
    stages_ms: tuple[tuple[str, float, float], ...] = ()
    """Per hop: name, p50 and p99 milliseconds."""
    messages: dict[str, Traffic] | None = None
    """NATS messages per client over the run, as the server counted them (when it was asked)."""


@dataclass(frozen=True)
class Plan:
    """What one pipeline run measures; a zero skips a part."""

    ns: tuple[int, ...] = (5000, 20000)
    """Tasks in each throughput run, in order."""
    rates: tuple[float, ...] = (500.0, 1000.0)
    """Offered tasks/s of the latency runs."""
    duration_s: float = 30.0
    """Seconds of each latency run."""
    probe_s: float = 8.0
    """Seconds of each probe of the capacity search (0: no search)."""
    bounds: capacity.Bounds = field(default_factory=capacity.Bounds)
    max_probes: int = 8
    idle_s: float = 10.0
    """Seconds the mesh is left idle at the end while its CPU is measured."""
    warmup: int = 200
    orchestrators: int = 1
    """Orchestrator processes (maestro up --orchestrator-replicas)."""


@dataclass(frozen=True)
class PipelineResult:
    """Every run on one mesh, in the order made."""

    throughputs: tuple[Throughput, ...]
    latencies: tuple[Latency, ...]
    search: capacity.Search[Latency] | None
    idle_cpu_s: dict[str, float] | None
    """CPU seconds per process over `idle_s` with nothing to do."""
    idle_s: float

    def at_n(self, n: int) -> Throughput | None:
        """The throughput run of `n` tasks, if one was made."""
        return next((t for t in self.throughputs if t.n == n), None)

    def at_rate(self, rate: float) -> Latency | None:
        """The latency run at `rate` tasks/s, if one was made."""
        return next((lat for lat in self.latencies if lat.rate == rate), None)

    @property
    def full_load(self) -> Throughput | None:
        """The largest throughput run: its CPU per task is the mesh's at full load."""
        return max(self.throughputs, key=lambda t: t.n, default=None)


def _request(task_id: str) -> bytes:
    return codec.encode(TaskRequest(id=task_id, tenant=TENANT, role=ROLE, prompt=PROMPT))


async def _submit(bus: Bus, tracker: Tracker, task_id: str) -> asyncio.Future[PubAck]:
    """Publish one request as a client does (its id as Nats-Msg-Id); the future holds the store's ack."""
    data = _request(task_id)
    tracker.submitted[task_id] = time.perf_counter()
    return await bus.js.publish_async(
        topics.REQUESTS.subject(TENANT), data, headers={topics.HEADER_MSG_ID: task_id}
    )


async def throughput(bus: Bus, running: BenchMesh, n: int, prefix: str, concurrency: int = 512) -> Throughput:
    """Submit `n` tasks concurrently and time them until succeeded, recorded and paid for."""
    tracker = Tracker()
    ids = [f"{prefix}{i:06d}" for i in range(n)]
    monitor = running.server.monitor_url
    async with tracker.listening(bus):
        counted = await MessageMeter(monitor).start() if monitor else None
        cpu = CpuMeter(running)
        started = time.perf_counter()
        window = asyncio.Semaphore(concurrency)

        async def one(task_id: str) -> None:
            async with window:
                ack = await _submit(bus, tracker, task_id)
                await ack

        await asyncio.gather(*(one(t) for t in ids))
        submitted = time.perf_counter()
        await tracker.wait(timeout=max(60.0, n / 50))
        ledger = await settled_ledger(bus, TENANT, timeout=10.0) if tracker.done() else None
        finished = time.perf_counter()
        spent = cpu.spent()
        traffic = await counted.spent() if counted else None
    states = await record_states(bus, topics.BUCKET_TASKS, set(ids), TaskRecord)
    return Throughput(
        n=n,
        submit_s=submitted - started,
        total_s=finished - started,
        unfinished=len(tracker.unfinished()),
        ended_badly=len(tracker.ended_badly),
        records_succeeded=sum(1 for s in states.values() if s == "succeeded"),
        ledger=ledger if ledger is not None else await read_ledger(bus, TENANT),
        cpu_s=spent,
        messages=traffic,
    )


async def latency(bus: Bus, running: BenchMesh, rate: float, duration_s: float, prefix: str) -> Latency:
    """Offer tasks at `rate` per second for `duration_s`, then wait for them (up to 30 s, or three times
    the run); submit -> Succeeded and submit -> recorded percentiles."""
    tracker = Tracker(stages=True)
    count = max(1, int(rate * duration_s))
    acks: list[asyncio.Future[PubAck]] = []
    loop = asyncio.get_running_loop()
    monitor = running.server.monitor_url
    async with tracker.listening(bus):
        counted = await MessageMeter(monitor).start() if monitor else None
        cpu = CpuMeter(running)
        start = loop.time()
        async for i in on_schedule(rate, count):
            acks.append(await _submit(bus, tracker, f"{prefix}{i:06d}"))
        offered_s = loop.time() - start
        await asyncio.gather(*acks)
        await tracker.wait(timeout=max(30.0, 3 * duration_s))
        wall_s = loop.time() - start
        spent = cpu.spent()
        traffic = await counted.spent() if counted else None
    succeeded = _waits(tracker.submitted, tracker.succeeded)
    recorded = _waits(tracker.submitted, tracker.recorded)
    return Latency(
        rate=rate,
        offered=count,
        # The last submit is due (count - 1) / rate after the first: the schedule's own length.
        achieved_rate=(count - 1) / offered_s if offered_s > 0 else rate,
        p50_ms=percentile(succeeded, 0.50),
        p99_ms=percentile(succeeded, 0.99),
        max_ms=succeeded[-1] if succeeded else float("nan"),
        unfinished=len(tracker.unfinished()),
        recorded_p50_ms=percentile(recorded, 0.50),
        recorded_p99_ms=percentile(recorded, 0.99),
        unrecorded=len(tracker.unrecorded()),
        wall_s=wall_s,
        cpu_s=spent,
        stages_ms=_stages(tracker),
        messages=traffic,
    )


def _waits(since: dict[str, float], until: dict[str, float]) -> list[float]:
    """Sorted milliseconds from `since` to `until` of every task that has both."""
    return sorted((until[t] - since[t]) * 1000 for t in since if t in until)


def _stages(tracker: Tracker) -> tuple[tuple[str, float, float], ...]:
    times = {**tracker.seen, "submitted": tracker.submitted, "recorded": tracker.recorded}
    out: list[tuple[str, float, float]] = []
    for start, end, what in _STAGES:
        waits = _waits(times.get(start, {}), times.get(end, {}))
        out.append((f"{start}->{end}: {what}", percentile(waits, 0.5), percentile(waits, 0.99)))
    return tuple(out)


async def measure(bus: Bus, running: BenchMesh, plan: Plan) -> PipelineResult:
    """Every part of `plan` on one running mesh, in order: warm-up, throughput per N, latency per rate,
    the capacity search, idle CPU. Raises RuntimeError when the warm-up does not finish."""
    if plan.warmup:
        warm = await throughput(bus, running, plan.warmup, "warm-")
        if warm.unfinished:
            raise RuntimeError(f"warm-up: {warm.unfinished} of {plan.warmup} tasks unfinished")
    throughputs = tuple([await throughput(bus, running, n, f"tput{n}-") for n in plan.ns if n > 0])
    latencies: tuple[Latency, ...] = ()
    if plan.duration_s > 0:
        latencies = tuple(
            [await latency(bus, running, rate, plan.duration_s, f"lat{rate:.0f}-") for rate in plan.rates]
        )
    found = None
    if plan.probe_s > 0:

        async def probe(rate: float) -> Latency:
            return await latency(bus, running, rate, plan.probe_s, f"probe{rate:.0f}-")

        start = min(plan.rates, default=500.0)
        found = await capacity.search(
            probe, plan.bounds, start=start, known=latencies, max_probes=plan.max_probes
        )
    idle = await mesh.idle_cpu(running, plan.idle_s) if plan.idle_s > 0 else None
    running.check_alive()
    return PipelineResult(throughputs, latencies, found, idle, plan.idle_s)


async def run(plan: Plan) -> PipelineResult:
    """Start a fresh server and the mesh on it, then measure `plan`."""
    with tempfile.TemporaryDirectory(prefix="maestro-bench-") as tmp:
        root = Path(tmp)
        with running_nats_server(
            root / "jetstream", log_file=root / "nats-server.log", monitored=True
        ) as server:
            async with mesh.running(
                server, root / "maestro", orchestrator_replicas=plan.orchestrators
            ) as running:
                harness = Settings(nats_url=server.url, data_dir=str(root), request_timeout_s=10.0)
                async with open_bus(harness, "bench-pipeline") as bus:
                    await mesh.wait_serving(running, bus)
                    return await measure(bus, running, plan)


def cpu_line(cpu_s: dict[str, float], wall_s: float, tasks: int) -> str:
    """CPU per process: seconds, share of one core over the run, and milliseconds per task; then the
    services' total, and with the server."""
    parts = sorted(cpu_s.items(), key=lambda item: -item[1])
    services = mesh.services_cpu(cpu_s)
    with_server = services + cpu_s.get(mesh.NATS_SERVER, 0.0)
    return ", ".join(
        [f"{name} {sec:.1f}s {sec / wall_s:.0%} {1000 * sec / tasks:.2f}ms/task" for name, sec in parts]
        + [
            f"services total {1000 * services / tasks:.2f} ms CPU/task, "
            f"with nats-server {1000 * with_server / tasks:.2f}"
        ]
    )


def messages_line(traffic: dict[str, Traffic], cpu_s: dict[str, float], tasks: int) -> str:
    """NATS messages per task by client, and the services' CPU per message they exchanged (to read beside
    bench/wakeup.py's floor for a message that comes alone)."""
    exchanged = messages.total(traffic, leave_out=(messages.HARNESS,)).total
    per_message = (
        f"; services' CPU {1e6 * mesh.services_cpu(cpu_s) / exchanged:.0f} us per message"
        if exchanged
        else ""
    )
    return f"  nats messages per task: {messages.line(traffic, tasks)}{per_message}"


def describe_throughput(t: Throughput) -> list[str]:
    """The lines of one throughput run."""
    ledger = t.ledger
    money = (
        f"ledger spent {ledger.spent_micro_usd} held {ledger.held_micro_usd} micro-USD"
        if ledger is not None
        else "ledger unreadable"
    )
    return [
        f"pipeline: {t.n} tasks in {t.total_s:.2f}s = {t.tasks_per_s:,.0f} tasks/s "
        f"(submitted in {t.submit_s:.2f}s); not finished {t.unfinished}, failed/rejected {t.ended_badly}, "
        f"records succeeded {t.records_succeeded}/{t.n}, {money}",
        f"  cpu ({t.total_s:.1f}s wall; 100% = one core): {cpu_line(t.cpu_s, t.total_s, t.n)}",
        *([messages_line(t.messages, t.cpu_s, t.n)] if t.messages else []),
    ]


def describe_latency(lat: Latency, stages: bool = True) -> list[str]:
    """The lines of one latency run (with its per-hop percentiles when `stages`)."""
    lines = [
        f"latency @ {lat.rate:,.0f} tasks/s offered ({lat.offered} tasks, "
        f"achieved {lat.achieved_rate:,.0f}/s): "
        f"submit->succeeded p50 {lat.p50_ms:.1f} ms, p99 {lat.p99_ms:.1f} ms, max {lat.max_ms:.1f} ms; "
        f"submit->recorded p50 {lat.recorded_p50_ms:.1f} ms, p99 {lat.recorded_p99_ms:.1f} ms; "
        f"not finished {lat.unfinished}, not recorded {lat.unrecorded}",
        f"  cpu ({lat.wall_s:.0f}s wall): {cpu_line(lat.cpu_s, lat.wall_s, lat.offered)}",
        *([messages_line(lat.messages, lat.cpu_s, lat.offered)] if lat.messages else []),
    ]
    if stages:
        lines += [f"  {p50:7.2f} ms p50 {p99:7.2f} ms p99  {name}" for name, p50, p99 in lat.stages_ms]
    return lines


def describe_search(found: capacity.Search[Latency]) -> list[str]:
    """The capacity search: every probe and the highest passing rate."""
    bounds = found.bounds
    probes = []
    for p in found.probes:
        why = capacity.failure(p, bounds)
        probes.append(
            f"{p.rate:,.0f}/s: p99 {p.p99_ms:.1f} ms, achieved {p.achieved_rate:,.0f}/s "
            + ("pass" if why is None else f"FAIL ({why})")
        )
    best = found.highest_passing
    return [
        f"capacity (p99 submit->succeeded < {bounds.p99_ms:.0f} ms, nothing unfinished, offered within "
        f"{bounds.shortfall:.0%}): highest passing {'none' if best is None else f'{best:,.0f} tasks/s'}",
        *(f"  {line}" for line in probes),
    ]


def describe_idle(idle_cpu_s: dict[str, float], idle_s: float) -> str:
    """Each process's share of one core while the mesh is idle."""
    parts = sorted(idle_cpu_s.items(), key=lambda item: -item[1])
    shares = ", ".join(f"{name} {sec / idle_s:.2%}" for name, sec in parts)
    return f"idle ({idle_s:.0f}s, 100% = one core): {shares}"


def describe(result: PipelineResult) -> list[str]:
    """The report's lines for this benchmark."""
    lines = [line for t in result.throughputs for line in describe_throughput(t)]
    lines += [line for lat in result.latencies for line in describe_latency(lat)]
    if result.search is not None:
        lines += describe_search(result.search)
    if result.idle_cpu_s is not None:
        lines.append(describe_idle(result.idle_cpu_s, result.idle_s))
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m bench.pipeline [--n N ...] [--rates R ...] [--duration S] [--probe S] [--idle S]`."""
    parser = argparse.ArgumentParser(prog="python -m bench.pipeline", description=__doc__)
    parser.add_argument("--n", type=int, nargs="+", default=[5000, 20000], help="tasks per throughput run")
    parser.add_argument("--rates", type=float, nargs="+", default=[500.0, 1000.0], help="offered tasks/s")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of each latency run (0: skip)")
    parser.add_argument("--probe", type=float, default=8.0, help="seconds per capacity probe (0: skip)")
    parser.add_argument("--idle", type=float, default=10.0, help="seconds of idle CPU measurement (0: skip)")
    parser.add_argument("--orchestrators", type=int, default=1, help="orchestrator processes")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    plan = Plan(
        tuple(args.n),
        tuple(args.rates),
        args.duration,
        args.probe,
        idle_s=args.idle,
        orchestrators=args.orchestrators,
    )
    for line in describe(asyncio.run(run(plan))):
        print(line)


if __name__ == "__main__":
    main()
