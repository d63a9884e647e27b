"""Budget limits: the per-task ceiling of the bundle and of the request, with the amounts in the violation."""

from __future__ import annotations

from maestro.policy.policies.budget import BudgetPolicy, check
from proto.v1 import TaskRequest


def request(**kwargs: object) -> TaskRequest:
    return TaskRequest(id="t1", tenant="acme", role="planner", prompt="Plan it", **kwargs)  # type: ignore[arg-type]


def test_no_ceiling_means_no_finding() -> None:
    assert check(request(), BudgetPolicy(), 10**9) == []


def test_an_estimate_at_the_ceiling_passes_and_above_it_is_denied_with_the_amounts() -> None:
    policy = BudgetPolicy(max_task_micro_usd=50_000)
    assert check(request(), policy, 50_000) == []
    (finding,) = check(request(), policy, 50_001)
    v = finding.violation
    assert (finding.action, v.rule_id, v.location) == (
        "deny",
        "budget.task-ceiling",
        "bundle:budget.max_task_micro_usd",
    )
    assert "50001 micro-USD" in v.message and "50000 micro-USD" in v.message and "$0.050000" in v.message


def test_the_requests_own_ceiling_applies_too() -> None:
    (finding,) = check(request(max_cost_micro_usd=100), BudgetPolicy(max_task_micro_usd=10_000), 5_000)
    assert finding.violation.location == "max_cost_micro_usd"
    both = check(request(max_cost_micro_usd=100), BudgetPolicy(max_task_micro_usd=1_000), 5_000)
    assert [f.violation.location for f in both] == ["bundle:budget.max_task_micro_usd", "max_cost_micro_usd"]


def test_the_action_comes_from_the_policy() -> None:
    (finding,) = check(request(), BudgetPolicy(max_task_micro_usd=1, action="approve"), 2)
    assert finding.action == "approve"
