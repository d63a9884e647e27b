"""Time pressure: a task that runs longer than the ack wait (it must run once), one that outlives its
budget hold (it must still be charged), and an overload of 20,000 submissions as fast as the client can
send them, with a short ack wait (each task still runs once; every process's memory is reported before
and after, and bounded)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from chaos import processes
from chaos.drill import Plan, Stage, drill
from chaos.invariants import Report
from chaos.load import Load, Planned
from chaos.streams import budget_event_kinds
from proto.v1 import TaskRequest

LONG_S = 6.0
"""How long the long task's command sleeps: three ack waits."""
OVERLOAD = 20_000
TESTER_EVERY = 10
"""Every n-th overload task is a tester that records its execution; the rest are planners (cheaper)."""
SERVICE_GROWTH_MIB = 128
"""The most a Maestro service may grow through the overload, once every task has ended (measured: 4-10)."""
NATS_GROWTH_MIB = 768
"""The most nats-server may grow: it keeps recent blocks of every stream and each stream's duplicate
window of message ids in memory, and Go returns freed memory to the system late (measured: about 400 for
20,000 tasks, five streams and buckets written per task)."""


async def run_long(workdir: Path) -> Report:
    """long-task: 12 tester tasks that sleep 6 s with a 2 s ack wait, all submitted at once."""
    plan = Plan(
        tasks=12,
        rate=None,
        sleep_s=LONG_S,
        refused_every=0,
        env={"MAESTRO_ACK_WAIT_S": "2"},
        converge_s=40.0,
    )
    return await drill("long-task", workdir, plan)


async def run_late_commit(workdir: Path) -> Report:
    """late-commit: 20 tester tasks that outlive their budget hold (ttl 1 s, swept every 0.5 s): each is
    still charged, and its record says what the ledger charged."""
    plan = Plan(
        tasks=20,
        rate=None,
        sleep_s=3.0,
        refused_every=0,
        env={"MAESTRO_RESERVATION_TTL_S": "1", "MAESTRO_BUDGET_SWEEP_S": "0.5"},
        converge_s=40.0,
    )
    return await drill("late-commit", workdir, plan, after=holds_expired)


async def holds_expired(stage: Stage) -> None:
    """The scenario tested what it says only if holds did expire before their commits."""
    kinds = await budget_event_kinds(stage.client.bus.js)
    expired, late = kinds.get("budget.hold_expired", 0), kinds.get("budget.late_commit", 0)
    stage.notes.append(f"{expired} holds expired; {late} commits came after their hold had expired")
    if not expired and not late:
        stage.violations.append("no hold expired before its commit: the scenario proved nothing")


def overload_requests(load: Load, plan: Plan) -> list[Planned]:
    """Planner tasks, every n-th one a tester whose command records its execution."""
    planned = []
    for n in range(plan.tasks):
        tenant = plan.tenants[n % len(plan.tenants)]
        if n % TESTER_EVERY == 0:
            planned.append(load.tester(tenant))
        else:
            planned.append(Planned(TaskRequest(tenant=tenant, role="planner", prompt=f"Plan step {n}")))
    return planned


@dataclass
class Memory:
    """Resident memory of every process of the mesh, before the load and after every task ended."""

    before: dict[str, int] = field(default_factory=dict)

    def _now(self, stage: Stage) -> dict[str, int]:
        found = {}
        for member in stage.mesh.members():
            rss = processes.rss_kib(member.pid)
            if rss is not None:
                found[member.name] = rss
        return found

    async def measure(self, stage: Stage) -> None:
        """Before the load."""
        self.before = self._now(stage)
        self.before["harness"] = processes.rss_kib(os.getpid()) or 0

    async def verify(self, stage: Stage) -> None:
        """After: report each process's growth; a violation past the bound."""
        after = self._now(stage)
        after["harness"] = processes.rss_kib(os.getpid()) or 0
        shown = []
        for name in sorted(after):
            was, now = self.before.get(name), after[name]
            shown.append(f"{name} {_mib(was) if was else '?'}→{_mib(now)}")
            bound = NATS_GROWTH_MIB if name == "nats-server" else SERVICE_GROWTH_MIB
            if was and name != "harness" and now - was > bound * 1024:
                stage.violations.append(f"{name} grew {_mib(now - was)} MiB (bound {bound} MiB)")
        stage.notes.append(f"RSS MiB before→after: {', '.join(shown)}")


def _mib(kib: int) -> str:
    return f"{kib / 1024:.0f}"


async def run_overload(workdir: Path, tasks: int = OVERLOAD) -> Report:
    """overload: 20,000 submissions as fast as the client can (ack wait 5 s); memory before and after."""
    memory = Memory()
    plan = Plan(
        tasks=tasks,
        rate=None,
        sleep_s=0.0,
        refused_every=0,
        env={"MAESTRO_ACK_WAIT_S": "5"},
        fault_at=0.0,
        converge_s=90.0,
    )
    return await drill(
        "overload", workdir, plan, before=memory.measure, after=memory.verify, planned=overload_requests
    )
