"""Workflow steps through the real mesh, beside single tasks on the same mesh in the same run.

Chains: W workflows of five no-op steps (bench/pipeline.ROLE; each needs the one before) published at once;
the clock runs from the first publish to the last workflow.ended event, and stops only when every workflow
ended succeeded, every WorkflowRecord in `maestro_workflows` reads succeeded and the tenant's ledger holds
nothing. steps/s = 5W / that wall time; latency is each workflow's publish -> workflow.ended.
Single tasks: 5W such tasks with the same prompt submitted at once (bench/pipeline.py's throughput run),
so the ratio is what running a step as part of a workflow costs against running it as a task.
The two alternate for two rounds and the best of each is compared: on a shared 2-core machine one run of
either swung by a factor of 1.7 with the load of other processes, a pair run back to back much less.
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

from nats.aio.msg import Msg

from bench import mesh, pipeline
from bench.baseline import percentile
from bench.mesh import BenchMesh, CpuMeter, MeshError
from bench.tracker import record_states, settled_ledger
from maestro import topics
from maestro.bus import Bus
from maestro.client import publish_workflow
from maestro.embedded import running_nats_server
from maestro.runtime import open_bus
from maestro.settings import Settings
from proto.v1 import LedgerView
from proto.v1.workflows import WORKFLOW_ENDED, Step, Workflow, WorkflowRecord

TENANT = "bench-wf"
"""Its own tenant, so that its ledger holds only the workflows' steps."""
STEPS = 5
_ENDED = b'"kind":"workflow.ended"'
_SUCCEEDED = b'"state":"succeeded"'


@dataclass
class Ends:
    """When each workflow the harness published went in and ended (and how)."""

    published: dict[str, float] = field(default_factory=dict)
    ended: dict[str, float] = field(default_factory=dict)
    ended_badly: dict[str, bytes] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    # A core NATS callback: a byte search instead of a decode keeps the harness off the services' CPU.
    async def on_event(self, msg: Msg) -> None:
        """A workflow event on maestro.v1.wfevt.>."""
        workflow_id = msg.subject.rsplit(".", 1)[1]
        if workflow_id not in self.published or _ENDED not in msg.data:
            return
        if _SUCCEEDED in msg.data:
            self.ended.setdefault(workflow_id, time.perf_counter())
        else:
            self.ended_badly[workflow_id] = msg.data
        self.changed.set()

    def done(self) -> bool:
        """Every published workflow has ended (well or not)."""
        return len(self.ended) + len(self.ended_badly) >= len(self.published)

    async def wait(self, timeout: float) -> bool:
        """Wait until done() or `timeout`; whether every workflow ended."""
        try:
            async with asyncio.timeout(timeout):
                while not self.done():
                    self.changed.clear()
                    await self.changed.wait()
        except TimeoutError:
            return False
        return True


@dataclass(frozen=True)
class Chains:
    """W five-step chains published at once, until all ended, recorded and paid for."""

    workflows: int
    steps: int
    submit_s: float
    total_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    unfinished: int
    ended_badly: int
    records_succeeded: int
    ledger: LedgerView | None
    cpu_s: dict[str, float]

    @property
    def steps_per_s(self) -> float:
        """Steps end to end per second of wall time."""
        return self.steps / self.total_s


@dataclass(frozen=True)
class WorkflowsResult:
    """Rounds on one mesh, each single tasks then chains back to back (a pair shares the machine's load)."""

    rounds: tuple[tuple[pipeline.Throughput, Chains], ...]

    @property
    def chains(self) -> Chains:
        """The fastest chains run: on a shared machine the others lost time to something else."""
        return max((c for _, c in self.rounds), key=lambda c: c.steps_per_s)

    @property
    def single(self) -> pipeline.Throughput:
        """The fastest single-task run."""
        return max((s for s, _ in self.rounds), key=lambda s: s.tasks_per_s)


def chain(workflow_id: str, steps: int = STEPS) -> Workflow:
    """A chain of `steps` no-op steps with the pipeline's prompt, each needing the one before."""
    return Workflow(
        id=workflow_id,
        tenant=TENANT,
        steps=[
            Step(name=f"s{i}", role=pipeline.ROLE, prompt=pipeline.PROMPT, needs=[f"s{i - 1}"] if i else [])
            for i in range(steps)
        ],
    )


async def chains(bus: Bus, running: BenchMesh, workflows: int, prefix: str, concurrency: int = 256) -> Chains:
    """Publish `workflows` chains concurrently and time them until ended, recorded and paid for."""
    ends = Ends()
    sub = await bus.nc.subscribe(topics.WORKFLOW_EVENTS.all, cb=ends.on_event, pending_msgs_limit=-1)
    await bus.nc.flush()
    ids = [f"{prefix}{i:05d}" for i in range(workflows)]
    definitions = {i: chain(i) for i in ids}
    cpu = CpuMeter(running)
    started = time.perf_counter()
    try:
        window = asyncio.Semaphore(concurrency)

        async def one(workflow_id: str) -> None:
            async with window:
                ends.published[workflow_id] = time.perf_counter()
                await publish_workflow(bus, definitions[workflow_id], None)

        await asyncio.gather(*(one(i) for i in ids))
        submitted = time.perf_counter()
        await ends.wait(timeout=max(60.0, workflows / 5))
        last = max(ends.ended.values(), default=time.perf_counter())
        ok = len(ends.ended) == workflows
        ledger = await settled_ledger(bus, TENANT, timeout=10.0) if ok else None
        spent = cpu.spent()
    finally:
        await sub.unsubscribe()
    states = await _ended_records(bus, set(ids), within=10.0)
    waits = sorted((ends.ended[i] - ends.published[i]) * 1000 for i in ids if i in ends.ended)
    return Chains(
        workflows=workflows,
        steps=workflows * STEPS,
        submit_s=submitted - started,
        total_s=last - started,
        p50_ms=percentile(waits, 0.50),
        p99_ms=percentile(waits, 0.99),
        max_ms=waits[-1] if waits else float("nan"),
        unfinished=workflows - len(ends.ended) - len(ends.ended_badly),
        ended_badly=len(ends.ended_badly),
        records_succeeded=sum(1 for s in states.values() if s == "succeeded"),
        ledger=ledger,
        cpu_s=spent,
    )


async def _ended_records(bus: Bus, ids: set[str], within: float) -> dict[str, str]:
    """The workflows' record states once every one has ended (or as they are after `within` seconds): a
    workflow's record is written just after its end event is published, so it may trail what `Ends` saw."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        states = await record_states(bus, topics.BUCKET_WORKFLOWS, ids, WorkflowRecord)
        if len(states) == len(ids) and all(s in WORKFLOW_ENDED for s in states.values()):
            return states
        if loop.time() > deadline:
            return states
        await asyncio.sleep(0.05)


async def run(workflows: int, rounds: int = 2, warmup: int = 20) -> WorkflowsResult:
    """Start a fresh server and the mesh, warm up, then time 5W single tasks and W chains on it, `rounds`
    times in turn."""
    with tempfile.TemporaryDirectory(prefix="maestro-bench-wf-") as tmp:
        root = Path(tmp)
        with running_nats_server(root / "jetstream", log_file=root / "nats-server.log") as server:
            async with mesh.running(server, root / "maestro") as running:
                harness = Settings(nats_url=server.url, data_dir=str(root), request_timeout_s=10.0)
                async with open_bus(harness, "bench-workflows") as bus:
                    await mesh.wait_serving(running, bus)
                    if warmup:
                        await pipeline.throughput(bus, running, warmup * STEPS, "warm-")
                        warm = await chains(bus, running, warmup, "warm-wf-")
                        if warm.unfinished or warm.ended_badly:
                            failed = warm.unfinished + warm.ended_badly
                            raise MeshError(f"warm-up: {failed} of {warmup} workflows did not succeed")
                    pairs = []
                    for r in range(rounds):
                        single = await pipeline.throughput(bus, running, workflows * STEPS, f"single{r}-")
                        pairs.append((single, await chains(bus, running, workflows, f"wf{r}-")))
                    running.check_alive()
                    return WorkflowsResult(tuple(pairs))


def _row(figure: str, value: float, base: float, fmt: str) -> str:
    return f"{figure:<56}{value:>12{fmt}}{base:>12{fmt}}{value / base:>10.3f}"


def describe(result: WorkflowsResult) -> list[str]:
    """The report's lines for this benchmark, ending in its figures beside the single tasks'."""
    c, single = result.chains, result.single
    money = (
        f"tenant ledger (every run so far) spent {c.ledger.spent_micro_usd} "
        f"held {c.ledger.held_micro_usd} micro-USD"
        if c.ledger is not None
        else "ledger not settled"
    )
    not_ended = sum(pair.unfinished + pair.ended_badly for _, pair in result.rounds)
    mesh_cpu = mesh.services_cpu(c.cpu_s) + c.cpu_s.get(mesh.NATS_SERVER, 0.0)
    single_cpu = mesh.services_cpu(single.cpu_s) + single.cpu_s.get(mesh.NATS_SERVER, 0.0)
    rounds = ", ".join(
        f"{one.tasks_per_s:,.0f} tasks/s, {many.steps_per_s:,.0f} steps/s" for one, many in result.rounds
    )
    return [
        f"workflows: {c.workflows} chains of {STEPS} steps = {c.steps} steps in {c.total_s:.2f}s = "
        f"{c.steps_per_s:,.0f} steps/s (published in {c.submit_s:.2f}s); not ended {c.unfinished}, "
        f"ended badly {c.ended_badly}, records succeeded {c.records_succeeded}/{c.workflows}, {money}",
        f"  workflow latency publish->ended: p50 {c.p50_ms:.0f} ms, p99 {c.p99_ms:.0f} ms, "
        f"max {c.max_ms:.0f} ms",
        f"  cpu ({c.total_s:.1f}s wall; 100% = one core): {pipeline.cpu_line(c.cpu_s, c.total_s, c.steps)}",
        f"single tasks on the same mesh: {single.n} in {single.total_s:.2f}s = {single.tasks_per_s:,.0f} "
        f"tasks/s; not finished {single.unfinished}",
        f"  rounds of single tasks then chains: {rounds}",
        "",
        f"{'figure (baseline: single tasks, same mesh; best round)':<56}"
        f"{'value':>12}{'baseline':>12}{'ratio':>10}",
        _row("workflow steps/s vs tasks/s", c.steps_per_s, single.tasks_per_s, ",.0f"),
        _row(
            "mesh CPU ms per step vs per task", 1000 * mesh_cpu / c.steps, 1000 * single_cpu / single.n, ".2f"
        ),
        f"{'workflows not ended well (must be 0)':<56}{not_ended:>12}",
    ]


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m bench.workflows [--workflows W]`."""
    parser = argparse.ArgumentParser(prog="python -m bench.workflows", description=__doc__)
    parser.add_argument("--workflows", type=int, default=200, help="five-step chains at once (default 200)")
    parser.add_argument("--rounds", type=int, default=2, help="single tasks then chains, this many times")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    for line in describe(asyncio.run(run(args.workflows, args.rounds))):
        print(line)


if __name__ == "__main__":
    main()
