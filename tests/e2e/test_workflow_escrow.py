"""A workflow's whole estimate is held before its first step: what does not fit is refused up front."""

from __future__ import annotations

import asyncio

from msgspec import structs

from maestro import topics
from maestro.client import Client
from maestro.errors import NotFound
from maestro.estimates import Prices
from proto.v1 import SetBudget
from proto.v1.workflows import Step, Workflow
from services.orchestrator.workflows.escrow import workflow_estimate


def three_steps(workflow_id: str, tenant: str) -> Workflow:
    return Workflow(
        id=workflow_id,
        tenant=tenant,
        steps=[
            Step(name="plan", role="planner", prompt="Plan a word counter"),
            Step(name="code", role="implementer", prompt="Build: {{ steps.plan.output }}", needs=["plan"]),
            Step(name="review", role="reviewer", prompt="Review it", needs=["code"]),
        ],
    )


async def test_of_three_workflows_with_room_for_one_one_runs_and_two_are_refused_before_any_step(
    mesh: Client,
) -> None:
    workflows = [three_steps(f"wf-room-{n}", "lean") for n in range(3)]
    estimate = workflow_estimate(workflows[0], Prices.of(mesh.bus.settings))
    limit = estimate + estimate // 2  # room for one, not two
    await mesh.bus.calls.request(
        topics.BUDGET_SET, SetBudget(tenant="lean", limit_micro_usd=limit), key="lean"
    )

    await asyncio.gather(*(mesh.run_workflow(w) for w in workflows))
    records = [await mesh.wait_workflow(w.id, timeout=90) for w in workflows]

    ran = [r for r in records if r.state == "succeeded"]
    refused = [r for r in records if r.state == "failed"]
    assert len(ran) == 1 and len(refused) == 2, [(r.id, r.state, r.reason) for r in records]
    assert ran[0].escrow_micro_usd == estimate
    for record in refused:
        assert "does not fit the budget" in record.reason
        assert {s.state for s in record.steps} == {"skipped"}
        for step in record.steps:  # no step of a refused workflow was ever submitted
            try:
                await mesh.get(step.task_id)
                raise AssertionError(f"{step.task_id} ran")
            except NotFound:
                pass
    ledger = await mesh.ledger("lean")
    assert ledger.held_micro_usd == 0  # the escrow's rest went back when the workflow ended
    assert ledger.spent_micro_usd == ran[0].cost_micro_usd <= limit


async def test_a_workflows_steps_draw_from_its_escrow_so_they_fit_even_when_the_rest_is_spoken_for(
    mesh: Client,
) -> None:
    workflow = three_steps("wf-drawn", "tight")
    estimate = workflow_estimate(workflow, Prices.of(mesh.bus.settings))
    await mesh.bus.calls.request(
        topics.BUDGET_SET, SetBudget(tenant="tight", limit_micro_usd=estimate + 1), key="tight"
    )

    await mesh.run_workflow(workflow)
    record = await mesh.wait_workflow("wf-drawn", timeout=90)

    # Held once for the workflow, never again for its steps: with room for only that, every step ran.
    assert record.state == "succeeded", record.reason
    assert (await mesh.ledger("tight")).held_micro_usd == 0


async def test_a_workflow_estimated_above_its_own_ceiling_is_refused_before_any_step(mesh: Client) -> None:
    workflow = structs.replace(three_steps("wf-capped", "acme"), max_cost_micro_usd=1)

    await mesh.run_workflow(workflow)
    record = await mesh.wait_workflow("wf-capped", timeout=30)

    assert record.state == "failed" and "exceeds its ceiling of 1" in record.reason
    assert {s.state for s in record.steps} == {"skipped"}
