"""A workflow's progress, decided from its record alone (pure, no I/O).

`progress(record)` says which waiting steps to submit, which to skip, which running ones to cancel, and
whether the workflow has ended. The runner does what it says and stores the record it returns; deciding
again on that record decides nothing new, so a crash between the two is repaired by deciding again.

Edges: a step runs when every step it needs has ended. A need that did not succeed counts by the edge's
`on_failure`: `fail` ends the workflow failed (the steps still running are cancelled, the waiting ones
skipped), `skip` skips the step (and so its own dependents, unless they `continue`), `continue` runs it
with the failure visible in its prompt. A skipped need skips the step unless the edge says `continue`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from msgspec import structs

from proto.v1.tasks import TaskRecord
from proto.v1.workflows import (
    MAX_STEPS,
    STEP_ENDED,
    Need,
    Plan,
    Step,
    StepRecord,
    Workflow,
    WorkflowRecord,
    WorkflowState,
    dag_problem,
    step_task_id,
)


def created(workflow: Workflow, digest: str, now: datetime) -> WorkflowRecord:
    """The record of a workflow just accepted: running, every step waiting."""
    return WorkflowRecord(
        id=workflow.id,
        tenant=workflow.tenant,
        state="running",
        created_at=now,
        updated_at=now,
        workflow=workflow,
        digest=digest,
        steps=[StepRecord(name=s.name, task_id=step_task_id(workflow.id, s.name)) for s in workflow.steps],
        labels=workflow.labels,
    )


def expanded(record: WorkflowRecord, name: str, plan: Plan, limit: int) -> WorkflowRecord | str:
    """The record with the subtasks of step `name`'s plan added to the workflow, or why the plan cannot be.

    Subtask `x` becomes step `<name>_<n>` (its place in the plan); it needs `name` and the subtasks it
    names, and every step that needed `name` also needs the plan's last subtasks (those nothing in the plan
    needs), on the same terms.
    """
    if len(plan.subtasks) > limit:
        return f"the plan has {len(plan.subtasks)} subtasks; at most {limit} are run"
    names = {st.name: f"{name[:20]}_{n}" for n, st in enumerate(plan.subtasks, 1)}
    if len(names) < len(plan.subtasks):
        return "the plan names two subtasks alike"
    taken = {s.name for s in record.workflow.steps} & set(names.values())
    if taken:
        return f"the plan's steps would take names the workflow has: {', '.join(sorted(taken))}"
    planner = next(s for s in record.workflow.steps if s.name == name)
    added: list[Step] = []
    for st in plan.subtasks:
        unknown = [n for n in st.needs if n not in names]
        if unknown:
            return f"subtask {st.name} needs {unknown[0]!r}, which the plan does not have"
        needs: list[str | Need] = [name, *(names[n] for n in st.needs)]
        added.append(
            Step(
                name=names[st.name],
                role=st.role,
                prompt=st.prompt,
                needs=needs,
                commands=st.commands,
                model=planner.model,
                labels=planner.labels,
            )
        )
    needed = {n for st in plan.subtasks for n in st.needs}
    last = [names[st.name] for st in plan.subtasks if st.name not in needed]
    steps = [
        structs.replace(s, needs=[*s.needs, *(Need(step=leaf, on_failure=e.on_failure) for leaf in last)])
        if (e := next((e for e in s.edges() if e.step == name), None)) is not None
        else s
        for s in record.workflow.steps
    ]
    steps += added
    problem = dag_problem(steps) if len(steps) <= MAX_STEPS else f"the workflow would have {len(steps)} steps"
    if problem is not None:
        return f"the plan does not fit the workflow: {problem}"
    workflow = structs.replace(record.workflow, steps=steps)
    records = [StepRecord(name=s.name, task_id=step_task_id(record.id, s.name)) for s in added]
    return structs.replace(record, workflow=workflow, steps=[*record.steps, *records])


def refused(record: WorkflowRecord, reason: str, now: datetime) -> WorkflowRecord:
    """The record of a workflow refused before any step ran: failed, every step skipped with the reason."""
    steps = [structs.replace(s, state="skipped", error=reason) for s in record.steps]
    return structs.replace(
        record, state="failed", reason=reason, steps=steps, finished_at=now, updated_at=now
    )


@dataclass(frozen=True)
class Progress:
    """What to do next: the record to store, the steps to submit and to cancel, and whether it ended."""

    record: WorkflowRecord
    submit: list[str] = field(default_factory=list)
    cancel: list[str] = field(default_factory=list)
    ended: bool = False


def step_ended(record: WorkflowRecord, task: TaskRecord) -> WorkflowRecord:
    """Fold a step's task record into the workflow's record: its end once, and after that what it cost
    (a stopped step's worker reports its usage after the step ended); unknown tasks change nothing."""
    steps = []
    changed = False
    for step in record.steps:
        if step.task_id == task.id and step.state not in STEP_ENDED:
            step = structs.replace(
                step,
                state=task.state,
                attempts=task.attempts,
                cost_micro_usd=task.cost_micro_usd,
                error=task.error or (task.reason if task.state != "succeeded" else ""),
            )
            changed = True
        elif step.task_id == task.id and step.cost_micro_usd != task.cost_micro_usd:
            step = structs.replace(step, cost_micro_usd=task.cost_micro_usd)
            changed = True
        steps.append(step)
    if not changed:
        return record
    return structs.replace(
        record, steps=steps, cost_micro_usd=sum(s.cost_micro_usd for s in steps), updated_at=task.updated_at
    )


def progress(record: WorkflowRecord, now: datetime) -> Progress:
    """What the record calls for now (see the module's docstring)."""
    if record.state in ("succeeded", "failed", "cancelled"):
        return Progress(record)
    by_name = {s.name: s for s in record.steps}
    edges = {s.name: s.edges() for s in record.workflow.steps}
    ending, reason = record.ending, record.reason
    states = {name: step.state for name, step in by_name.items()}
    errors = {name: step.error for name, step in by_name.items()}
    if ending is None:
        # Fail fast: a step that did not succeed, needed by a step whose edge says `fail`, fails the workflow
        # now, not once that step's other needs end.
        for need in (n for needs in edges.values() for n in needs if n.on_failure == "fail"):
            state = states[need.step]
            if state in STEP_ENDED and state not in ("succeeded", "skipped"):
                ending, reason = "failed", f"step {need.step} {state}"
                break
    submit: list[str] = []
    # Settle waiting steps in an order where needs come first, so a skip propagates in one pass.
    for name in _ordered(edges):
        if states[name] != "waiting":
            continue
        needs = edges[name]
        if any(states[n.step] not in STEP_ENDED for n in needs):
            continue
        verdict, why = _judge(needs, states)
        if verdict == "fail" and ending is None:
            ending, reason = "failed", why
        if ending is not None or verdict != "run":
            states[name], errors[name] = "skipped", why if verdict != "run" else f"the workflow {ending}"
        elif record.state == "running":
            submit.append(name)
            states[name] = "pending"
    running = [n for n, s in states.items() if s not in STEP_ENDED and s != "waiting" and n not in submit]
    cancel = running if ending is not None else []
    if ending is not None:
        for name in list(states):
            if states[name] == "waiting":
                states[name], errors[name] = "skipped", f"the workflow {ending}"
    steps = [
        structs.replace(step, state=states[step.name], error=errors[step.name])
        if (states[step.name], errors[step.name]) != (step.state, step.error)
        else step
        for step in record.steps
    ]
    new = structs.replace(record, steps=steps, ending=ending, reason=reason)
    if all(s.state in STEP_ENDED for s in steps):
        final: WorkflowState = ending or _outcome(new)
        why = reason or _failure(new) if final == "failed" else reason
        new = structs.replace(new, state=final, reason=why, finished_at=now, updated_at=now)
        return Progress(new, submit, cancel, ended=True)
    if new != record:
        new = structs.replace(new, updated_at=now)
    return Progress(new, submit, cancel)


def _judge(needs: list[Need], states: Mapping[str, str]) -> tuple[str, str]:
    """`run`, `skip` or `fail` for a step whose needs have all ended, and why when it is not `run`."""
    verdict, why = "run", ""
    for need in needs:
        state = states[need.step]
        if state == "succeeded" or need.on_failure == "continue":
            continue
        if state == "skipped":
            if verdict == "run":
                verdict, why = "skip", f"step {need.step} was skipped"
        elif need.on_failure == "skip":
            if verdict == "run":
                verdict, why = "skip", f"step {need.step} {state}"
        else:
            return "fail", f"step {need.step} {state}"
    return verdict, why


def _outcome(record: WorkflowRecord) -> WorkflowState:
    """Every step ended and nothing failed the workflow: it failed only if a failure went unhandled."""
    return "failed" if _failure(record) else "succeeded"


def _failure(record: WorkflowRecord) -> str:
    """A step that did not succeed with no step after it taking that in (`continue` or `skip`), or ""."""
    handled: set[str] = set()
    for defined in record.workflow.steps:
        handled |= {n.step for n in defined.edges() if n.on_failure != "fail"}
    for step in record.steps:
        if step.state not in ("succeeded", "skipped") and step.name not in handled:
            return f"step {step.name} {step.state}"
    return ""


def _ordered(edges: dict[str, list[Need]]) -> list[str]:
    """Step names with every step after the ones it needs (the DAG was checked acyclic)."""
    out: list[str] = []
    placed: set[str] = set()

    def place(name: str) -> None:
        if name in placed:
            return
        placed.add(name)
        for need in edges[name]:
            place(need.step)
        out.append(name)

    for name in edges:
        place(name)
    return out
