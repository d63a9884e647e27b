"""Budget limits: a task whose estimated cost exceeds its ceiling (the bundle's or its own) is refused.

The tenant's remaining budget is not judged here: the guard reserves the estimate with the budget
service, which refuses what does not fit.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from maestro.policy.policies import Action, Finding, Mode
from proto.v1 import TaskRequest, Violation

POLICY = "budget"


class BudgetPolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The per-task cost ceiling and what to do when a task's estimate exceeds it."""

    mode: Mode = "enforce"
    action: Action = "deny"
    max_task_micro_usd: Annotated[int, msgspec.Meta(ge=0)] | None = None
    """Most a single task may be estimated to cost; none means only the request's own ceiling applies."""


def _usd(micro: int) -> str:
    return f"${micro / 1_000_000:,.6f}"


def check(request: TaskRequest, policy: BudgetPolicy, estimate_micro_usd: int) -> list[Finding]:
    """A finding for each ceiling (the bundle's, the request's) below the task's estimated cost."""
    findings: list[Finding] = []
    ceilings = (
        ("bundle:budget.max_task_micro_usd", policy.max_task_micro_usd, "the tenant's per-task ceiling"),
        ("max_cost_micro_usd", request.max_cost_micro_usd, "the task's own ceiling"),
    )
    for location, ceiling, name in ceilings:
        if ceiling is None or estimate_micro_usd <= ceiling:
            continue
        findings.append(
            Finding(
                Violation(
                    policy=POLICY,
                    rule_id="budget.task-ceiling",
                    severity="medium",
                    location=location,
                    evidence=f"estimate={estimate_micro_usd} ceiling={ceiling}",
                    message=f"the estimated cost {estimate_micro_usd} micro-USD ({_usd(estimate_micro_usd)}) "
                    f"exceeds {name} of {ceiling} micro-USD ({_usd(ceiling)})",
                    fix="shorten the prompt and context, or raise the ceiling",
                ),
                policy.action,
            )
        )
    return findings
