"""Budget replicas killed while tenants race for the last cent: two replicas, tight limits, each killed
in turn under load. Spent plus held must never pass a limit, and every charge must be in a record."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from chaos.drill import Plan, Stage, drill
from chaos.invariants import Report

LIMIT_MICRO_USD = 50_000
"""Room for one hold of a tester task's estimate (about 41,000 µUSD: an answer and a repair round) at a time,
and a few dozen charges (each about 350 µUSD)."""
TENANTS = ("acme", "globex", "initech")
_EXTRA = "budget-extra"
_MODULE = "services.budget"


def _replicas(stage: Stage) -> list[str]:
    return sorted(m.name for m in stage.mesh.members() if m.service == "budget")


async def two_replicas(stage: Stage) -> None:
    """At least two budget replicas: `maestro up` runs two; with one, the harness starts a second."""
    if len(_replicas(stage)) < 2:
        await stage.mesh.start_extra(_EXTRA, _MODULE)


async def kill_each(stage: Stage) -> None:
    """SIGKILL each replica in turn, some submissions apart, waiting for it to be back before the next."""
    for n, name in enumerate(_replicas(stage)):
        if n:
            await stage.load.until(stage.load.answered + 40)
        kills = stage.mesh.kill(name)
        if name in stage.mesh.extras:
            await stage.mesh.restart_extra(name, _MODULE)  # nobody supervises it
        else:
            await stage.mesh.back(kills)


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
    report = await drill("budget-race", workdir, plan, kill_each, before=two_replicas)
    if not report.states.get("succeeded"):
        # Nothing held, nothing raced: a limit below one estimate would make this scenario pass vacuously.
        why = f"no task fit a limit of {LIMIT_MICRO_USD} µUSD: nothing raced for the last cent"
        return dataclasses.replace(report, violations=(*report.violations, why))
    return report
