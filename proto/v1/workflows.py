"""Workflows: steps (each a task the guard judges) joined by what they need, and the record they fold into.

A workflow is a DAG of named steps; a chain is one whose steps each need the one before. A step runs when
every step it needs has ended; its prompt may name what they produced (`{{ steps.plan.output }}`, see
services/orchestrator/workflows/template.py). What a failed need does to the step is the edge's
`on_failure`: `fail` the workflow, `continue` with the failure visible, or `skip` the step.
"""

from __future__ import annotations

import re
import secrets
import time
from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from proto.base import Message
from proto.v1.humans import HandOff, HumanWork
from proto.v1.ids import (
    DEFAULT_PRIORITY,
    END,
    MicroUsd,
    ModelName,
    Priority,
    Role,
    Tenant,
    is_human,
    role_problem,
)
from proto.v1.tasks import ContextFile, RetryPolicy, TaskState, Timeouts

MAX_STEPS = 100
"""The most steps a workflow may have, with those a planner adds."""
MAX_PROMPT_CHARS = 256 * 1024

# A step's task id is `<workflow id>-<step name>`: step names have no `-`, so the last one splits the two
# and no two (workflow, step) pairs share a task id; both lengths together stay within a task id's 64.
STEP_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,23}" + END
WORKFLOW_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,38}" + END

StepName = Annotated[
    str, Meta(pattern=STEP_NAME_PATTERN, description="a step's name: lowercase letters, digits and `_`")
]
WorkflowId = Annotated[
    str, Meta(pattern=WORKFLOW_ID_PATTERN, description="workflow id, also its idempotency key (≤ 39 chars)")
]
OnFailure = Literal["fail", "continue", "skip"]


def new_workflow_id() -> str:
    """A fresh workflow id: time-ordered (ms, hex) then 48 random bits."""
    return f"w{time.time_ns() // 1_000_000:011x}{secrets.token_hex(6)}"


def step_task_id(workflow_id: str, step: str) -> str:
    """The task id of a workflow's step."""
    return f"{workflow_id}-{step}"


_STEP_NAME = re.compile(STEP_NAME_PATTERN)


def step_name(task_id: str, parent: str | None) -> str | None:
    """The step a task may be of: its id is `<parent>-<step name>`, or None (the workflow named by `parent`
    still has to have that step)."""
    if not parent or not task_id.startswith(f"{parent}-"):
        return None
    name = task_id[len(parent) + 1 :]
    return name if _STEP_NAME.match(name) else None


def escrow_task_id(workflow_id: str) -> str:
    """The task id a workflow's escrow hold is reserved under (no step's: step names have no `-`)."""
    return f"{workflow_id}--escrow"


class Need(Message, frozen=True):
    """A step this one needs, and what its failure does to this one."""

    step: StepName
    on_failure: OnFailure = "fail"


class Step(Message, frozen=True):
    """One step: a task for a role, run when the steps it needs have ended."""

    name: StepName
    role: Role
    prompt: Annotated[str, Meta(min_length=1, max_length=MAX_PROMPT_CHARS)]
    """A template: `{{ steps.<name>.output }}`, `.state`, `.error`, `{{ workflow.id }}`."""
    needs: list[StepName | Need] = []
    """The steps it waits for: a name (a failure fails the workflow) or a Need with its on_failure."""
    context: list[ContextFile] = []
    commands: list[str] = []
    model: ModelName | None = None
    labels: dict[str, str] = {}
    max_cost_micro_usd: MicroUsd | None = None
    timeouts: Timeouts | None = None
    retry: RetryPolicy | None = None
    priority: Priority | None = None
    """Its task's priority (None: the workflow's)."""
    expand: bool = False
    """A planner step whose answer is a Plan: its subtasks join the workflow, after it and before the steps
    that need it, each judged by the guard like any step."""
    human: HumanWork | None = None
    """A human queue's step (`human:<queue>`): its form, lease and SLAs; the answer is the step's output."""
    hand_off: HandOff | None = None
    """An agent's step: the human queue it goes to when its agent cannot proceed (TaskRequest.hand_off)."""

    def __post_init__(self) -> None:
        if problem := role_problem(self.role):
            raise ValueError(problem)
        if self.human is not None and not is_human(self.role):
            raise ValueError(f"human is only for a human queue's step (human:<queue>), not a {self.role}")

    def edges(self) -> list[Need]:
        """Every need as a Need (a bare name fails the workflow when that step fails)."""
        return [n if isinstance(n, Need) else Need(step=n) for n in self.needs]


class Subtask(Message, frozen=True):
    """One task of a planner's plan; `needs` names other subtasks of the same plan."""

    name: StepName
    role: Role
    prompt: Annotated[str, Meta(min_length=1, max_length=MAX_PROMPT_CHARS)]
    needs: list[StepName] = []
    commands: list[str] = []

    def __post_init__(self) -> None:
        if problem := role_problem(self.role):
            raise ValueError(problem)


class Plan(Message, frozen=True):
    """What a planner step with `expand` answers (as JSON): the subtasks to add to its workflow."""

    subtasks: Annotated[list[Subtask], Meta(min_length=1, max_length=MAX_STEPS)]


class Workflow(Message, frozen=True):
    """A workflow as submitted; `id` is the idempotency key (generated when absent)."""

    tenant: Tenant
    steps: Annotated[list[Step], Meta(min_length=1, max_length=MAX_STEPS)]
    id: WorkflowId = msgspec.field(default_factory=new_workflow_id)
    labels: dict[str, str] = {}
    max_cost_micro_usd: MicroUsd | None = None
    priority: Priority = DEFAULT_PRIORITY
    """The priority of its steps' tasks, unless a step says otherwise."""

    def __post_init__(self) -> None:
        problem = dag_problem(self.steps)
        if problem is not None:
            raise ValueError(problem)


_REFERENCE = re.compile(r"\{\{\s*steps\.([a-z][a-z0-9_]*)\.(output|state|error)\s*\}\}")


def references(prompt: str) -> list[str]:
    """The steps a prompt template names (`{{ steps.<name>.output }}`), in order."""
    return [m.group(1) for m in _REFERENCE.finditer(prompt)]


def dag_problem(steps: list[Step]) -> str | None:
    """What makes `steps` no DAG (a duplicate name, an unknown or own need, a cycle, a prompt naming a step
    that may not have run before it), or None."""
    index: dict[str, int] = {}
    for i, step in enumerate(steps):
        if step.name in index:
            return f"steps[{i}].name: {step.name!r} is also steps[{index[step.name]}]'s name"
        index[step.name] = i
    for i, step in enumerate(steps):
        if step.expand and step.role != "planner":
            return f"steps[{i}].expand: only a planner step expands into subtasks, not a {step.role}"
        seen: set[str] = set()
        for j, need in enumerate(step.edges()):
            if need.step not in index:
                return f"steps[{i}].needs[{j}]: no step is named {need.step!r}"
            if need.step == step.name:
                return f"steps[{i}].needs[{j}]: {step.name!r} cannot need itself"
            if need.step in seen:
                return f"steps[{i}].needs[{j}]: {need.step!r} is needed twice"
            seen.add(need.step)
    cycle = _cycle(steps)
    if cycle:
        return f"steps: a cycle {' -> '.join(cycle)}"
    before = _ancestors(steps)
    for i, step in enumerate(steps):
        for name in references(step.prompt):
            if name not in before[step.name]:
                return (
                    f"steps[{i}].prompt: names step {name!r}, which {step.name!r} does not need "
                    "(directly or through the steps it needs), so it may not have run"
                )
    return None


def _ancestors(steps: list[Step]) -> dict[str, set[str]]:
    """Every step each step needs, directly or not (the DAG is acyclic)."""
    needs = {s.name: [n.step for n in s.edges()] for s in steps}
    found: dict[str, set[str]] = {}

    def of(name: str) -> set[str]:
        if name not in found:
            found[name] = set()
            for parent in needs[name]:
                found[name] |= {parent, *of(parent)}
        return found[name]

    for name in needs:
        of(name)
    return found


def _cycle(steps: list[Step]) -> list[str]:
    """A cycle of needs (names, the first repeated at the end), or [] when there is none."""
    needs = {s.name: [n.step for n in s.edges()] for s in steps}
    state: dict[str, int] = {}  # 1: on the path, 2: done
    for root in needs:
        if state.get(root):
            continue
        path: list[str] = []
        stack: list[tuple[str, int]] = [(root, 0)]
        while stack:
            name, i = stack.pop()
            if i == 0:
                state[name] = 1
                path.append(name)
            if i < len(needs[name]):
                stack.append((name, i + 1))
                nxt = needs[name][i]
                if state.get(nxt) == 1:
                    return [*path[path.index(nxt) :], nxt]
                if not state.get(nxt):
                    stack.append((nxt, 0))
            else:
                state[name] = 2
                path.pop()
    return []


StepState = Literal["waiting", "skipped"] | TaskState
"""`waiting` for its needs, `skipped`, or its task's state once submitted (`pending` … `succeeded`)."""
WorkflowState = Literal["running", "paused", "succeeded", "failed", "cancelled"]
WORKFLOW_ENDED: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})
STEP_ENDED: frozenset[str] = frozenset(
    {"skipped", "rejected", "succeeded", "failed", "timed_out", "cancelled"}
)


class StepRecord(Message, frozen=True):
    """Where one step stands."""

    name: StepName
    task_id: str
    state: StepState = "waiting"
    attempts: int = 0
    cost_micro_usd: MicroUsd = 0
    error: str = ""
    """Why it failed, was skipped or was not run."""


class WorkflowRecord(Message, frozen=True):
    """The current state of a workflow and each of its steps, kept by the orchestrator."""

    id: WorkflowId
    tenant: Tenant
    state: WorkflowState
    created_at: datetime
    updated_at: datetime
    workflow: Workflow
    """The definition as submitted."""
    digest: str
    """A fingerprint of the definition: the same id with another definition is a conflict."""
    steps: list[StepRecord] = []
    labels: dict[str, str] = {}
    cost_micro_usd: MicroUsd = 0
    escrow_micro_usd: MicroUsd = 0
    """What was held for the whole workflow before its first step (its steps' holds draw from it)."""
    reason: str = ""
    ending: WorkflowState | None = None
    """Set when the workflow failed or was cancelled while steps still run: the state it ends in once
    every step has ended (a workflow ends only when every step has)."""
    finished_at: datetime | None = None
    cancelled_by: str = ""

    def step(self, name: str) -> StepRecord:
        """The record of the step named `name`; raises KeyError when there is none."""
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)


class WorkflowControl(Message, frozen=True):
    """Pause, resume or cancel a workflow (the orchestrator's `workflow.control` endpoint answers with its
    record)."""

    workflow_id: WorkflowId
    tenant: Tenant
    action: Literal["pause", "resume", "cancel"]
    by: Annotated[str, Meta(max_length=256)] = ""
    reason: Annotated[str, Meta(max_length=4096)] = ""


class WorkflowEvent(Message, frozen=True, tag_field="kind"):
    """Fields every workflow event carries."""

    workflow_id: WorkflowId
    tenant: Tenant
    at: datetime


class WorkflowStarted(WorkflowEvent, frozen=True, tag="workflow.started"):
    """The workflow was accepted and its first steps submitted."""

    steps: list[str] = []


class WorkflowPaused(WorkflowEvent, frozen=True, tag="workflow.paused"):
    """No new step starts until it is resumed; running ones finish."""

    by: str = ""
    reason: str = ""
    """Why, as whoever paused it said (the API's and the CLI's --reason)."""


class WorkflowResumed(WorkflowEvent, frozen=True, tag="workflow.resumed"):
    """Steps start again."""

    by: str = ""
    reason: str = ""
    """Why, as whoever resumed it said."""


class WorkflowEnded(WorkflowEvent, frozen=True, tag="workflow.ended"):
    """Every step has ended: the workflow succeeded, failed or was cancelled."""

    state: WorkflowState
    reason: str = ""
    cost_micro_usd: MicroUsd = 0


WorkflowEvents = WorkflowStarted | WorkflowPaused | WorkflowResumed | WorkflowEnded
