"""The workflow invariants' pure checks, on facts made by hand: each can pass, and each can fail."""

from __future__ import annotations

from datetime import UTC, datetime

from msgspec import structs

from chaos.facts import Facts
from chaos.workflow_facts import WorkflowFacts, check_workflows, submissions
from proto.v1.workflows import Step, StepRecord, Workflow, WorkflowEnded, WorkflowRecord, step_task_id
from tests.chaos.test_invariants import ledger, record

NOW = datetime(2026, 1, 1, tzinfo=UTC)
CHAIN = Workflow(
    id="wf",
    tenant="acme",
    steps=[
        Step(name="a", role="tester", prompt="a", commands=["true"]),
        Step(name="b", role="tester", prompt="b", needs=["a"]),
    ],
)


def healthy() -> tuple[WorkflowFacts, Facts]:
    steps = [
        StepRecord(name=s.name, task_id=step_task_id("wf", s.name), state="succeeded", cost_micro_usd=100)
        for s in CHAIN.steps
    ]
    done = WorkflowRecord(
        id="wf",
        tenant="acme",
        state="succeeded",
        created_at=NOW,
        updated_at=NOW,
        workflow=CHAIN,
        digest="d",
        steps=steps,
        cost_micro_usd=200,
    )
    ended = WorkflowEnded(workflow_id="wf", tenant="acme", at=NOW, state="succeeded", cost_micro_usd=200)
    workflows = WorkflowFacts(workflows={"wf": CHAIN}, records={"wf": done}, ended={"wf": [ended]})
    tasks = Facts(records={s.task_id: record(s.task_id) for s in steps}, ledgers={"acme": ledger(spent=200)})
    return workflows, tasks


def test_a_workflow_that_ran_well_keeps_every_invariant() -> None:
    assert check_workflows(*healthy()) == []
    assert [(s.task_id, s.effect) for s in submissions(CHAIN)] == [("wf-a", True), ("wf-b", False)]


def test_a_workflow_without_a_record_or_ended_twice_is_named() -> None:
    workflows, tasks = healthy()
    workflows.ended["wf"] = workflows.ended["wf"] * 2
    assert any("ended more than once: wf" in v for v in check_workflows(workflows, tasks))
    del workflows.records["wf"]
    assert any("have no record: wf" in v for v in check_workflows(workflows, tasks))


def test_a_cost_that_is_not_its_steps_sum_or_money_left_held_is_named() -> None:
    workflows, tasks = healthy()
    workflows.records["wf"] = structs.replace(workflows.records["wf"], cost_micro_usd=150)
    tasks.ledgers["acme"] = ledger(spent=200, held=7)
    violations = check_workflows(workflows, tasks)
    assert any("cost other than their steps' tasks" in v and "wf 150 vs steps 200" in v for v in violations)
    assert any("7 µUSD still held" in v for v in violations)


def test_a_step_that_did_not_succeed_is_named() -> None:
    workflows, tasks = healthy()
    record_ = workflows.records["wf"]
    steps = [structs.replace(record_.steps[0], state="failed"), record_.steps[1]]
    workflows.records["wf"] = structs.replace(record_, steps=steps, state="failed")
    violations = check_workflows(workflows, tasks)
    assert any("steps did not succeed: wf/a failed" in v for v in violations)
    assert any("did not succeed: wf failed" in v for v in violations)
