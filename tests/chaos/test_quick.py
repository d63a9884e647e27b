"""The quick subset of `make chaos` inside `make test`: real processes, a fault, the invariants after it.

Each test brings up a throw-away `maestro up` (free ports, its own store) and takes 10-20 s. Should one
fail because of a known, unfixed finding, mark it `xfail(strict=True, reason=...)` so it flips with the fix.
"""

from __future__ import annotations

from pathlib import Path

from chaos import table
from chaos.drill import Plan, drill
from chaos.scenarios import kills
from chaos.scenarios.poison import PoisonRun


async def test_agents_killed_mid_task_lose_nothing_and_run_nothing_twice(tmp_path: Path) -> None:
    plan = Plan(tasks=50, rate=25.0, converge_s=25.0)
    report = await drill("kill-agents", tmp_path, plan, kills.service("agents"))
    assert report.ok, table.render([report])


async def test_poison_goes_to_the_dlq_and_the_guard_keeps_serving(tmp_path: Path) -> None:
    poison = PoisonRun()
    plan = Plan(tasks=40, fault_at=0.2, converge_s=15.0)
    report = await drill("poison", tmp_path, plan, poison.publish, after=poison.verify)
    assert report.ok, table.render([report])
