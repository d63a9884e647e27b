"""Budget replicas killed while tenants race for the last cent: two replicas, tight limits, each killed
in turn under load. Spent plus held must never pass a limit, and every charge must be in a record."""

from __future__ import annotations

from pathlib import Path

from chaos.drill import Plan, Stage, drill
from chaos.invariants import Report

LIMIT_MICRO_USD = 20_000
"""Room for one hold of a tester task's estimate (about 15,400 µUSD) at a time, and a few dozen charges."""
TENANTS = ("acme", "globex", "initech")
_SECOND = "budget-2"
_MODULE = "services.budget"


async def second_replica(stage: Stage) -> None:
    """A second budget replica beside the one `maestro up` runs."""
    await stage.mesh.start_extra(_SECOND, _MODULE)


async def kill_each(stage: Stage) -> None:
    """SIGKILL the supervised replica, wait for it, then SIGKILL the second one and start it again."""
    kill = stage.mesh.kill("budget")
    await stage.mesh.back("budget", kill.pid)
    await stage.load.until(stage.load.answered + 40)
    stage.mesh.kill(_SECOND)
    await stage.mesh.restart_extra(_SECOND, _MODULE)


async def run_race(workdir: Path) -> Report:
    """budget-race: 240 tester tasks at 40/s over three tenants of 0.02 USD each; each replica killed."""
    plan = Plan(
        tasks=240,
        rate=40.0,
        tenants=TENANTS,
        sleep_s=0.1,
        refused_every=0,
        limits=dict.fromkeys(TENANTS, LIMIT_MICRO_USD),
        fault_at=0.3,
    )
    return await drill("budget-race", workdir, plan, kill_each, before=second_replica)
