"""A workflow's estimate before any step runs: what its escrow holds (pure, no I/O).

Each step is priced as the guard will price it once its prompt is filled in (maestro/estimates.py, with
the table the budget charges with): its own text, plus, for each field of its prompt that names a step and
for each need's context file, an output as long as the deployment assumes a task writes.
"""

from __future__ import annotations

from maestro.estimates import BYTES_PER_TOKEN, Prices, of_text
from proto.v1.ids import MAX_MICRO_USD, is_human
from proto.v1.workflows import Step, Workflow, references

_CONTEXT_HEADER_CHARS = 64
"""A need's context file: its path and the lines around the output (`# step plan: succeeded`)."""


def step_estimate(step: Step, prices: Prices) -> int:
    """What the guard will hold for `step`, in micro-USD (nothing for a person's step: no model runs)."""
    if is_human(step.role):
        return 0
    output_chars = prices.estimate_output_tokens * BYTES_PER_TOKEN
    chars = (
        len(step.prompt)
        + sum(len(f.path) + len(f.content) for f in step.context)
        + sum(len(c) for c in step.commands)
        + output_chars * len(references(step.prompt))
        + (output_chars + _CONTEXT_HEADER_CHARS) * len(step.needs)
    )
    return of_text(chars, prices.model_for(step.role, step.model), prices).micro_usd


def workflow_estimate(workflow: Workflow, prices: Prices, max_subtasks: int = 0) -> int:
    """What the whole workflow is expected to cost, one attempt per step, and for a planner step that
    expands, as many subtasks as a plan may have, each reading the planner's output (bounded like any
    amount)."""
    total = 0
    for step in workflow.steps:
        total += step_estimate(step, prices)
        if step.expand:
            subtask = Step(name="x", role="implementer", prompt="x", needs=[step.name], model=step.model)
            total += max_subtasks * step_estimate(subtask, prices)
    return min(total, MAX_MICRO_USD)
