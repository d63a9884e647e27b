"""The planner: breaks a task into subtasks (role, prompt, what each needs, commands to run), as a Plan."""

from __future__ import annotations

import re

from maestro import codec
from maestro.policy.bundle import Bundle
from proto.v1 import TaskRequest
from proto.v1.workflows import Plan, Step, dag_problem
from services.agents.backends import structured
from services.agents.backends.base import Backend
from services.agents.roles.base import RoleResult, invalid
from services.agents.roles.changes import prompt_of, tree_or_failure
from services.agents.sandbox import Sandbox

SYSTEM = (
    "You are the planner of a software team. Break the task into subtasks, each for one role: scaffolder "
    "(lays out a project), implementer (changes code and tests), tester (runs shell commands, given in "
    "`commands`), reviewer (reviews the changes) or doc-writer (writes documentation). Name each subtask "
    "(lowercase letters, digits and `_`), give it a self-contained prompt, and list in `needs` the subtasks "
    "whose results it uses. The project's files, if any, follow the task, each after a `--- file: <path>` "
    "line."
)


def problem(plan: Plan) -> str | None:
    """What makes a plan no DAG (a name twice, an unknown need, a cycle), or None."""
    steps = [Step(name=s.name, role=s.role, prompt=s.prompt, needs=list(s.needs)) for s in plan.subtasks]
    found = dag_problem(steps)
    return re.sub(r"\bsteps(?=[\[:])", "subtasks", found) if found else None


def text(plan: Plan) -> str:
    """The plan for a reader: one numbered line per subtask with its role, what it needs and runs."""
    number = {s.name: n for n, s in enumerate(plan.subtasks, 1)}
    lines = []
    for n, subtask in enumerate(plan.subtasks, 1):
        after = f"; after {', '.join(str(number[x]) for x in subtask.needs)}" if subtask.needs else ""
        runs = "".join(f"; runs `{c}`" for c in subtask.commands)
        lines.append(f"{n}. {subtask.prompt} ({subtask.role}{after}{runs})")
    return "\n".join(lines)


async def run(
    request: TaskRequest, backend: Backend, sandbox: Sandbox, bundle: Bundle | None = None
) -> RoleResult:
    """Ask the model for a plan; asked to expand, answer it as a JSON Plan (its subtasks join the
    workflow), else as numbered lines."""
    tree = tree_or_failure(request)
    if isinstance(tree, RoleResult):
        return tree
    prompt = prompt_of(request.prompt, tree)
    try:
        answer = await structured.ask(
            backend, "planner", prompt, request.model, Plan, system=SYSTEM, check=problem
        )
    except structured.InvalidAnswer as exc:
        return invalid(str(exc), exc.usage)
    output = codec.encode(answer.value).decode() if request.expand else text(answer.value)
    return RoleResult(ok=True, output=output, usage=answer.usage)
