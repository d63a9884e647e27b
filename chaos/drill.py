"""A drill: a fresh mesh, a steady load of tester tasks, a fault part-way through, the facts at the end."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from chaos.invariants import Report, check
from chaos.load import Load, Planned, budget_ready, sampling_ledgers, set_limit
from chaos.mesh import ChaosMesh, MeshError, running_mesh
from maestro.client import Client, open_client


@dataclass(frozen=True)
class Plan:
    """The load of a drill and the mesh it runs on."""

    tasks: int = 200
    rate: float | None = 25.0
    """Submissions per second (None: as fast as the client can)."""
    tenants: tuple[str, ...] = ("acme", "globex")
    sleep_s: float = 0.3
    """How long each tester command sleeps before it records its execution: tasks are mid-run when hit."""
    refused_every: int = 10
    """Every n-th request carries a credential and must be rejected (0: none)."""
    env: Mapping[str, str] = field(default_factory=dict)
    """MAESTRO_* settings of the mesh beyond the chaos defaults."""
    up_args: tuple[str, ...] = ()
    """Arguments of `maestro up` beyond the chaos ones (`--orchestrator-replicas 2`)."""
    limits: Mapping[str, int] = field(default_factory=dict)
    """Budget limits (µUSD) set per tenant before the load."""
    fault_at: float = 0.4
    """The fault starts once this share of the submissions has been answered."""
    converge_s: float = 45.0
    """How long the tasks get to end after the load and the fault are over."""


@dataclass
class Stage:
    """What a fault can reach, and where it reports what it saw."""

    mesh: ChaosMesh
    client: Client
    load: Load
    plan: Plan
    violations: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


Fault = Callable[[Stage], Awaitable[None]]


def requests(load: Load, plan: Plan) -> list[Planned]:
    """The plan's requests: tester tasks spread over the tenants, every n-th one to be refused."""
    planned = []
    for n in range(plan.tasks):
        tenant = plan.tenants[n % len(plan.tenants)]
        if plan.refused_every and n % plan.refused_every == plan.refused_every - 1:
            planned.append(load.refused(tenant))
        else:
            planned.append(load.tester(tenant, sleep_s=plan.sleep_s))
    return planned


async def nothing(stage: Stage) -> None:
    """No fault: the baseline."""


async def drill(
    name: str,
    workdir: Path,
    plan: Plan,
    fault: Fault = nothing,
    *,
    before: Fault = nothing,
    after: Fault = nothing,
    planned: Callable[[Load, Plan], list[Planned]] | None = None,
) -> Report:
    """Run the plan's load on a fresh mesh in `workdir` with `fault` part-way through; `before` runs
    before the load, `after` once every task has ended (or the plan's time is up); then judge the facts.

    `planned` makes the requests (default: requests())."""
    started = time.monotonic()
    async with AsyncExitStack() as stack:
        mesh = await stack.enter_async_context(running_mesh(workdir, plan.env, plan.up_args))
        stage = await stack.enter_async_context(staged(mesh, workdir, plan))
        await before(stage)
        await run_load(stage, (planned or requests)(stage.load, plan), fault)
        await stage.load.settle(plan.tenants, within=plan.converge_s)
        await after(stage)
    return judge(name, stage, time.monotonic() - started)


@asynccontextmanager
async def staged(mesh: ChaosMesh, workdir: Path, plan: Plan) -> AsyncIterator[Stage]:
    """A client on the mesh, the budget answering and the plan's limits set, for the length of a block."""
    async with open_client(mesh.settings()) as client:
        await budget_ready(client)
        for tenant, limit in plan.limits.items():
            await set_limit(client, tenant, limit)
        load = Load(client, workdir / "effects.log", logs=mesh.logs)
        yield Stage(mesh, client, load, plan)


async def run_load(stage: Stage, planned: list[Planned], fault: Fault) -> None:
    """Submit `planned` at the plan's rate, running `fault` once the plan's share has been answered."""
    async with sampling_ledgers(stage.client, stage.plan.tenants, stage.load.facts):
        async with asyncio.TaskGroup() as group:
            group.create_task(stage.load.steady(planned, stage.plan.rate))
            await stage.load.until(int(len(planned) * stage.plan.fault_at))
            try:
                await fault(stage)
            except MeshError as exc:
                stage.violations.append(f"fault: {exc}")


def judge(name: str, stage: Stage, seconds: float) -> Report:
    """The report on a finished drill."""
    stage.load.facts.kills = list(stage.mesh.kills)
    return check(name, stage.load.facts, seconds, violations=stage.violations, notes=stage.notes)
