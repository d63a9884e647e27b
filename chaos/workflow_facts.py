"""What a workflow scenario sees beyond its steps' task facts, and the invariants over it (pure checks).

A workflow's steps are tasks, so chaos/invariants.py judges them as it judges any task (one end each,
every command run once unless a kill excuses it, ledgers equal to records). These add the workflow's own:
- every acknowledged workflow ended succeeded, with every step succeeded under its step's task id;
- exactly one workflow.ended event per workflow, agreeing with its record;
- a workflow's cost is the sum of its steps' task records, and each step's cost is its task's;
- once every workflow ended, no tenant holds anything (a hold left is money no step will release);
- the orchestrator's workflow consumer has nothing left (a workflow redelivered without end).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from chaos.facts import Facts, Submission, some
from proto.v1.workflows import WORKFLOW_ENDED, Workflow, WorkflowEnded, WorkflowRecord, step_task_id


@dataclass
class WorkflowFacts:
    """The workflows a scenario had acknowledged, their records and ended events at the end."""

    workflows: dict[str, Workflow] = field(default_factory=dict)
    """Acknowledged workflows by id."""
    records: dict[str, WorkflowRecord] = field(default_factory=dict)
    ended: dict[str, list[WorkflowEnded]] = field(default_factory=dict)
    """Every workflow.ended event stored, by workflow id."""
    backlog: str = ""
    """What the orchestrator's workflow consumer still held at the end ('': nothing)."""


def submissions(workflow: Workflow) -> list[Submission]:
    """Each step of `workflow` as the task it becomes; a step with commands records its executions."""
    return [
        Submission(step_task_id(workflow.id, s.name), workflow.tenant, s.role, effect=bool(s.commands))
        for s in workflow.steps
    ]


def ends(facts: WorkflowFacts) -> list[str]:
    """Violations: a workflow without a record, not succeeded, with a step not succeeded, or ended other
    than exactly once as its record says."""
    missing: list[str] = []
    unsucceeded: list[str] = []
    steps_left: list[str] = []
    wrong_ids: list[str] = []
    ended_twice: list[str] = []
    unannounced: list[str] = []
    disagree: list[str] = []
    for workflow_id, workflow in facts.workflows.items():
        record = facts.records.get(workflow_id)
        if record is None:
            missing.append(workflow_id)
            continue
        if record.state != "succeeded":
            unsucceeded.append(f"{workflow_id} {record.state} ({record.reason or 'no reason'})")
        steps = {s.name: s for s in record.steps}
        for step in workflow.steps:
            found = steps.get(step.name)
            if found is None or found.state != "succeeded":
                steps_left.append(f"{workflow_id}/{step.name} {found.state if found else 'absent'}")
            elif found.task_id != step_task_id(workflow_id, step.name):
                wrong_ids.append(f"{workflow_id}/{step.name} ran as {found.task_id}")
        events = facts.ended.get(workflow_id, [])
        if len(events) > 1:
            ended_twice.append(workflow_id)
        if not events and record.state == "succeeded":
            unannounced.append(workflow_id)
        if events and events[0].state != record.state:
            disagree.append(f"{workflow_id} event {events[0].state}, record {record.state}")
    kinds = [
        (missing, "workflows have no record"),
        (unsucceeded, "workflows did not succeed"),
        (steps_left, "steps did not succeed"),
        (wrong_ids, "steps ran under another task id"),
        (ended_twice, "workflows ended more than once"),
        (unannounced, "workflows succeeded without a workflow.ended event"),
        (disagree, "workflow.ended events disagree with their record"),
    ]
    violations = [f"{len(items)} {what}: {some(items)}" for items, what in kinds if items]
    if facts.backlog:
        violations.append(f"the orchestrator's workflow consumer still held work at the end: {facts.backlog}")
    return violations


def costs(facts: WorkflowFacts, tasks: Facts) -> list[str]:
    """Violations: a workflow whose cost is not its steps' task records' sum, a step whose cost is not its
    task's, or (once every workflow ended) a tenant with money still held."""
    violations: list[str] = []
    workflow_off: list[str] = []
    step_off: list[str] = []
    for workflow_id, record in facts.records.items():
        total = 0
        for step in record.steps:
            task = tasks.records.get(step.task_id)
            cost = task.cost_micro_usd if task is not None else 0
            total += cost
            if step.cost_micro_usd != cost:
                step_off.append(f"{workflow_id}/{step.name} {step.cost_micro_usd} vs task {cost}")
        if record.cost_micro_usd != total:
            workflow_off.append(f"{workflow_id} {record.cost_micro_usd} vs steps {total}")
    if workflow_off:
        violations.append(
            f"{len(workflow_off)} workflows cost other than their steps' tasks (µUSD): {some(workflow_off)}"
        )
    if step_off:
        violations.append(f"{len(step_off)} steps cost other than their tasks (µUSD): {some(step_off)}")
    all_ended = facts.workflows.keys() <= {i for i, r in facts.records.items() if r.state in WORKFLOW_ENDED}
    if all_ended:
        violations += [
            f"{view.tenant}: {view.held_micro_usd} µUSD still held in {view.holds} holds after every "
            "workflow ended"
            for view in tasks.ledgers.values()
            if view.held_micro_usd
        ]
    return violations


def check_workflows(facts: WorkflowFacts, tasks: Facts) -> list[str]:
    """Every workflow invariant's violations (the steps' task invariants are chaos.invariants.check's)."""
    return [*ends(facts), *costs(facts, tasks)]
