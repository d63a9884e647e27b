"""Every scenario of `make chaos`, in the order they run (most valuable first)."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from chaos.invariants import Report
from chaos.scenarios import (
    api_contract,
    budget,
    cluster,
    humans,
    identity,
    kills,
    poison,
    policy,
    pressure,
    workflows,
)


@dataclass(frozen=True)
class Scenario:
    """A named fault drill: given a fresh working directory, it runs and reports."""

    name: str
    what: str
    run: Callable[[Path], Awaitable[Report]]


SCENARIOS: tuple[Scenario, ...] = (
    *(
        Scenario(f"kill-{name}", f"SIGKILL {name} mid-load", functools.partial(kills.run_kill, name))
        for name in ("guard", "budget", "orchestrator", "agents", "all")
    ),
    Scenario("kill-nats", "SIGKILL nats-server mid-load", kills.run_kill_nats),
    Scenario("kill-leader", "two orchestrators: SIGKILL the one that leads mid-load", kills.run_kill_leader),
    Scenario(
        workflows.NAME,
        "diamonds and chains: orchestrator SIGKILLed 3 times, agents once, mid-workflow",
        workflows.run_workflow_kills,
    ),
    Scenario(
        humans.NAME,
        "people claim and complete human tasks: orchestrator SIGKILLed 3 times, guard and agents once",
        humans.run_human_work,
    ),
    Scenario("poison", "garbage, wrong types, deep nesting, oversized, wrong tenant", poison.run_poison),
    Scenario("identity", "one id: the duplicate window, a restart, two tenants", identity.run_identity),
    Scenario("overload", f"{pressure.OVERLOAD:,} submissions as fast as possible", pressure.run_overload),
    Scenario("long-task", "tasks three times longer than the ack wait", pressure.run_long),
    Scenario(
        "late-commit", "tasks that outlive their budget hold are still charged", pressure.run_late_commit
    ),
    Scenario("budget-race", "budget replicas killed while tenants race for the last cent", budget.run_race),
    Scenario("policy-push", "policy bundles pushed mid-load: one bundle per decision", policy.run_push),
    Scenario("cluster", "3-node JetStream: stream leader killed, a node frozen 10 s", cluster.run_cluster),
    Scenario(
        api_contract.NAME,
        "Schemathesis against the live API: 500 inputs an operation, every check",
        api_contract.run_api_contract,
    ),
)


def named(names: list[str]) -> list[Scenario]:
    """The scenarios with these names, in suite order; raises KeyError naming an unknown one."""
    known = {s.name: s for s in SCENARIOS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise KeyError(f"unknown scenarios {unknown}; known: {', '.join(known)}")
    return [s for s in SCENARIOS if s.name in names]
