"""The task request of a workflow step (services/orchestrator/workflows/runner.request_of)."""

from __future__ import annotations

from datetime import UTC, datetime

from proto.v1 import DEFAULT_PRIORITY
from proto.v1.workflows import Step, Workflow
from services.orchestrator.workflows.dag import created
from services.orchestrator.workflows.runner import request_of


def test_a_step_runs_at_its_own_priority_else_at_its_workflows() -> None:
    workflow = Workflow(
        tenant="acme",
        priority=8,
        steps=[
            Step(name="plan", role="planner", prompt="plan"),
            Step(name="test", role="tester", prompt="test", needs=["plan"], priority=2),
        ],
    )
    record = created(workflow, "digest", datetime.now(UTC))
    plan, test = workflow.steps
    assert request_of(record, plan, {}).priority == 8
    assert request_of(record, test, {}).priority == 2
    default = Workflow(tenant="acme", steps=[plan])
    assert request_of(created(default, "d", datetime.now(UTC)), plan, {}).priority == DEFAULT_PRIORITY
