"""Trivial tasks through the real mesh: guard -> budget -> agents -> orchestrator, as child processes.

Throughput: N tasks submitted at once; the clock stops when every one has a Succeeded event, every
TaskRecord in `maestro_tasks` reads succeeded, and the tenant's ledger has spent > 0 with nothing held.
Latency: a fixed offered rate (200 tasks/s for ~10 s), submit -> Succeeded event, p50 and p99.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import resource
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

from nats.aio.msg import Msg
from nats.js.api import PubAck

from bench.baseline import percentile
from bench.mesh import Mesh, cpu_seconds, running_mesh, service_env, wait_ready
from maestro import codec, scan, topics
from maestro.bus import Bus
from maestro.embedded import EmbeddedServer, running_nats_server
from maestro.runtime import open_bus
from maestro.settings import Settings
from proto.v1 import GetLedger, LedgerView, TaskRecord, TaskRequest

TENANT = "bench"
PROMPT = "Plan a CLI that counts words"
_KIND = b'{"kind":"task.'
_SUCCEEDED = b'"kind":"task.succeeded"'
# The hops a task goes through, as the harness sees them: (from, to, what happens in between).
_STAGES = (
    ("submitted", "accepted", "request stored, guard pulls it, judges it, stores Accepted"),
    ("accepted", "queued", "guard reserves the estimate with the budget, stores Queued"),
    ("queued", "started", "guard stores the assignment, an agent pulls it, stores Started"),
    ("started", "succeeded", "agent works, commits usage to the budget, stores Succeeded"),
    ("succeeded", "recorded", "orchestrator pulls Succeeded, writes the record"),
)
_ENDED_BADLY = (b'"kind":"task.failed"', b'"kind":"task.rejected"', b'"kind":"task.timed_out"')
_RECORD_SUCCEEDED = b'"state":"succeeded"'
_KV_PREFIX = f"$KV.{topics.BUCKET_TASKS}."


@dataclass
class Tracker:
    """What the harness saw of each task it submitted: when it went in, succeeded, and was recorded."""

    submitted: dict[str, float] = field(default_factory=dict)
    succeeded: dict[str, float] = field(default_factory=dict)
    recorded: dict[str, float] = field(default_factory=dict)
    ended_badly: dict[str, bytes] = field(default_factory=dict)
    seen: dict[str, dict[str, float]] = field(default_factory=dict)
    """When the first event of each kind arrived, per task (kept only when `stages` is set)."""
    stages: bool = False
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    # Core NATS callbacks: a byte search instead of a decode keeps the harness off the services' CPU.
    async def on_event(self, msg: Msg) -> None:
        """A lifecycle event on maestro.v1.evt.>."""
        task_id = msg.subject.rsplit(".", 1)[1]
        if task_id not in self.submitted:
            return
        if self.stages and msg.data.startswith(_KIND):
            kind = msg.data[len(_KIND) : msg.data.index(b'"', len(_KIND))].decode()
            self.seen.setdefault(kind, {}).setdefault(task_id, time.perf_counter())
        if _SUCCEEDED in msg.data:
            self.succeeded.setdefault(task_id, time.perf_counter())
            self.changed.set()
        elif any(kind in msg.data for kind in _ENDED_BADLY):
            self.ended_badly[task_id] = msg.data
            self.changed.set()

    async def on_record(self, msg: Msg) -> None:
        """A write to the task bucket."""
        task_id = msg.subject[len(_KV_PREFIX) :]
        if task_id in self.submitted and _RECORD_SUCCEEDED in msg.data:
            self.recorded.setdefault(task_id, time.perf_counter())
            self.changed.set()

    def done(self) -> bool:
        """Every submitted task succeeded and is recorded as succeeded."""
        n = len(self.submitted)
        return len(self.succeeded) == n and len(self.recorded) == n

    def unfinished(self) -> list[str]:
        """Submitted tasks with no Succeeded event yet."""
        return [t for t in self.submitted if t not in self.succeeded]

    async def wait(self, timeout: float) -> bool:
        """Wait until done() or `timeout`; whether it is done."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.done():
            remaining = deadline - loop.time()
            if remaining <= 0 or len(self.ended_badly) + len(self.succeeded) >= len(self.submitted) > len(
                self.succeeded
            ):
                return False
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), min(remaining, 1.0))
            except TimeoutError:
                pass
        return True


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
    cpu_s: dict[str, float]
    stages_ms: tuple[tuple[str, float, float], ...] = ()
    """Per hop: name, p50 and p99 milliseconds."""


@dataclass(frozen=True)
class PipelineResult:
    """Both runs on one mesh."""

    throughput: Throughput
    latency: Latency | None


def _request(task_id: str) -> bytes:
    return codec.encode(TaskRequest(id=task_id, tenant=TENANT, role="planner", prompt=PROMPT))


async def _submit(bus: Bus, tracker: Tracker, task_id: str) -> asyncio.Future[PubAck]:
    """Publish one request as a client does (its id as Nats-Msg-Id); the future holds the store's ack."""
    data = _request(task_id)
    tracker.submitted[task_id] = time.perf_counter()
    return await bus.js.publish_async(
        topics.REQUESTS.subject(TENANT), data, headers={topics.HEADER_MSG_ID: task_id}
    )


async def _ledger(bus: Bus) -> LedgerView:
    return await bus.request(topics.BUDGET_GET, GetLedger(tenant=TENANT))


async def _settled_ledger(bus: Bus, timeout: float) -> LedgerView | None:
    """The ledger once nothing is held and something was spent, or None after `timeout`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        view = await _ledger(bus)
        if view.held_micro_usd == 0 and view.spent_micro_usd > 0:
            return view
        if loop.time() > deadline:
            return None
        await asyncio.sleep(0.01)


class _HasState(Protocol):
    @property
    def state(self) -> str: ...


Stated = TypeVar("Stated", bound=_HasState)


async def record_states(bus: Bus, bucket: str, ids: set[str], type_: type[Stated]) -> dict[str, str]:
    """The state of every record among `ids` in `bucket` (tasks or workflows), read back from the bucket."""
    states: dict[str, str] = {}
    async for entry in scan.current_entries(bus.js, bucket):
        if entry.key in ids:
            states[entry.key] = codec.decode(type_, entry.value).state
    return states


class _Cpu:
    """CPU seconds spent by each service, the server and this harness between two points."""

    def __init__(self, mesh: Mesh, server: EmbeddedServer) -> None:
        self._mesh = mesh
        self._server = server
        self._start = self._now()

    def _now(self) -> dict[str, float]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            **self._mesh.cpu(),
            "nats-server": cpu_seconds(self._server.process.pid),
            "harness": usage.ru_utime + usage.ru_stime,
        }

    def spent(self) -> dict[str, float]:
        now = self._now()
        return {name: now[name] - self._start.get(name, 0.0) for name in now}


async def throughput(
    bus: Bus, mesh: Mesh, server: EmbeddedServer, n: int, prefix: str, concurrency: int = 512
) -> Throughput:
    """Submit `n` tasks concurrently and time them until succeeded, recorded and paid for."""
    tracker = Tracker()
    events = await bus.nc.subscribe(topics.EVENTS.all, cb=tracker.on_event, pending_msgs_limit=-1)
    records = await bus.nc.subscribe(f"{_KV_PREFIX}>", cb=tracker.on_record, pending_msgs_limit=-1)
    await bus.nc.flush()
    ids = [f"{prefix}{i:06d}" for i in range(n)]
    cpu = _Cpu(mesh, server)
    started = time.perf_counter()
    try:
        window = asyncio.Semaphore(concurrency)

        async def one(task_id: str) -> None:
            async with window:
                ack = await _submit(bus, tracker, task_id)
                await ack

        await asyncio.gather(*(one(t) for t in ids))
        submitted = time.perf_counter()
        await tracker.wait(timeout=max(60.0, n / 50))
        ledger = await _settled_ledger(bus, timeout=10.0) if tracker.done() else None
        finished = time.perf_counter()
        spent = cpu.spent()
    finally:
        await events.unsubscribe()
        await records.unsubscribe()
    states = await record_states(bus, topics.BUCKET_TASKS, set(ids), TaskRecord)
    return Throughput(
        n=n,
        submit_s=submitted - started,
        total_s=finished - started,
        unfinished=len(tracker.unfinished()),
        ended_badly=len(tracker.ended_badly),
        records_succeeded=sum(1 for s in states.values() if s == "succeeded"),
        ledger=ledger if ledger is not None else await _ledger(bus),
        cpu_s=spent,
    )


async def latency(
    bus: Bus, mesh: Mesh, server: EmbeddedServer, rate: float, duration_s: float, prefix: str
) -> Latency:
    """Offer tasks at `rate` per second for `duration_s`; submit -> Succeeded latency percentiles."""
    tracker = Tracker(stages=True)
    events = await bus.nc.subscribe(topics.EVENTS.all, cb=tracker.on_event, pending_msgs_limit=-1)
    records = await bus.nc.subscribe(f"{_KV_PREFIX}>", cb=tracker.on_record, pending_msgs_limit=-1)
    await bus.nc.flush()
    count = int(rate * duration_s)
    cpu = _Cpu(mesh, server)
    acks: list[asyncio.Future[PubAck]] = []
    loop = asyncio.get_running_loop()
    start = loop.time()
    try:
        for i in range(count):
            delay = start + i / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            acks.append(await _submit(bus, tracker, f"{prefix}{i:06d}"))
        offered_s = loop.time() - start
        await asyncio.gather(*acks)
        await tracker.wait(timeout=30.0)
        spent = cpu.spent()
    finally:
        await events.unsubscribe()
        await records.unsubscribe()
    waits = sorted(
        (tracker.succeeded[t] - tracker.submitted[t]) * 1000
        for t in tracker.submitted
        if t in tracker.succeeded
    )
    return Latency(
        rate=rate,
        offered=count,
        achieved_rate=count / offered_s if offered_s > 0 else float("nan"),
        p50_ms=percentile(waits, 0.50),
        p99_ms=percentile(waits, 0.99),
        max_ms=waits[-1] if waits else float("nan"),
        unfinished=len(tracker.unfinished()),
        cpu_s=spent,
        stages_ms=_stages(tracker),
    )


def _stages(tracker: Tracker) -> tuple[tuple[str, float, float], ...]:
    times = {**tracker.seen, "submitted": tracker.submitted, "recorded": tracker.recorded}
    out: list[tuple[str, float, float]] = []
    for start, end, what in _STAGES:
        a, b = times.get(start, {}), times.get(end, {})
        waits = sorted((b[t] - a[t]) * 1000 for t in a if t in b)
        out.append((f"{start}->{end}: {what}", percentile(waits, 0.5), percentile(waits, 0.99)))
    return tuple(out)


async def run(n: int, rate: float = 200.0, duration_s: float = 10.0, warmup: int = 200) -> PipelineResult:
    """Start a fresh server and the mesh, warm up, then measure throughput and latency."""
    with tempfile.TemporaryDirectory(prefix="maestro-bench-") as tmp:
        root = Path(tmp)
        with running_nats_server(root / "jetstream", log_file=root / "nats-server.log") as server:
            settings = Settings(nats_url=server.url, data_dir=str(root / "maestro"), request_timeout_s=10.0)
            async with open_bus(settings, "bench-pipeline") as bus:
                env = service_env(server.url, root / "maestro")
                with running_mesh(env, root / "logs") as mesh:
                    try:
                        await wait_ready(mesh, bus, TENANT)
                        if warmup:
                            warm = await throughput(bus, mesh, server, warmup, "warm-")
                            if warm.unfinished:
                                raise RuntimeError(f"warm-up: {warm.unfinished} of {warmup} tasks unfinished")
                        result = await throughput(bus, mesh, server, n, "tput-")
                        lat = None
                        if duration_s > 0:
                            lat = await latency(bus, mesh, server, rate, duration_s, "lat-")
                        mesh.check_alive()
                    except BaseException:
                        for name in mesh.processes:
                            tail = mesh.log_tail(name, 10)
                            if tail:
                                print(f"--- {name} log tail ---\n{tail}")
                        raise
                    codes = mesh.stop()
                    bad = {k: v for k, v in codes.items() if v != 0}
                    if bad:
                        print(f"services exited with non-zero codes after SIGTERM: {bad}")
                    return PipelineResult(result, lat)


def _cpu_line(cpu_s: dict[str, float], wall_s: float, tasks: int) -> str:
    """CPU per process: seconds, share of one core over the run, and milliseconds per task."""
    parts = sorted(cpu_s.items(), key=lambda item: -item[1])
    mesh = sum(sec for name, sec in cpu_s.items() if name != "harness")
    return ", ".join(
        [f"{name} {sec:.1f}s {sec / wall_s:.0%} {1000 * sec / tasks:.2f}ms/task" for name, sec in parts]
        + [f"mesh+server total {1000 * mesh / tasks:.2f} ms CPU/task"]
    )


def describe(result: PipelineResult) -> list[str]:
    """The report's lines for this benchmark."""
    t = result.throughput
    ledger = t.ledger
    money = (
        f"ledger spent {ledger.spent_micro_usd} held {ledger.held_micro_usd} micro-USD"
        if ledger is not None
        else "ledger unreadable"
    )
    lines = [
        f"pipeline: {t.n} tasks in {t.total_s:.2f}s = {t.tasks_per_s:,.0f} tasks/s "
        f"(submitted in {t.submit_s:.2f}s); not finished {t.unfinished}, failed/rejected {t.ended_badly}, "
        f"records succeeded {t.records_succeeded}/{t.n}, {money}",
        f"  cpu ({t.total_s:.1f}s wall; 100% = one core): {_cpu_line(t.cpu_s, t.total_s, t.n)}",
    ]
    lat = result.latency
    if lat is not None:
        wall = lat.offered / lat.rate
        lines += [
            f"latency @ {lat.rate:.0f} tasks/s offered ({lat.offered} tasks, "
            f"achieved {lat.achieved_rate:.0f}/s): "
            f"p50 {lat.p50_ms:.1f} ms, p99 {lat.p99_ms:.1f} ms, max {lat.max_ms:.1f} ms; "
            f"not finished {lat.unfinished}",
            f"  cpu (~{wall:.0f}s wall): {_cpu_line(lat.cpu_s, wall, lat.offered)}",
        ]
        lines += [f"  {p50:7.2f} ms p50 {p99:7.2f} ms p99  {name}" for name, p50, p99 in lat.stages_ms]
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m bench.pipeline [--n N] [--rate R] [--duration S]`."""
    parser = argparse.ArgumentParser(prog="python -m bench.pipeline")
    parser.add_argument("--n", type=int, default=5000, help="tasks in the throughput run (default 5000)")
    parser.add_argument("--rate", type=float, default=200.0, help="offered tasks/s in the latency run")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of the latency run (0: skip)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    for line in describe(asyncio.run(run(args.n, args.rate, args.duration))):
        print(line)


if __name__ == "__main__":
    main()
