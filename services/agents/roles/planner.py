"""The planner: breaks a task into numbered steps."""

from __future__ import annotations

import re

from maestro import codec
from proto.v1 import Role, TaskRequest
from proto.v1.workflows import Plan, Subtask
from services.agents.backends.base import Backend
from services.agents.roles.base import RoleResult
from services.agents.sandbox import Sandbox

_STEP = re.compile(r"^\s*\d+[.)]\s+(\S.*?)\s*$")


def steps(text: str) -> list[str]:
    """The numbered lines of a plan (`1. ...` or `1) ...`), in order, without their numbers."""
    return [m.group(1) for m in map(_STEP.match, text.splitlines()) if m]


_COMMAND = re.compile(r"`([^`\n]+)`")
# The role a step of a plan goes to, by the first of these words it has (else the implementer).
_ROLE_WORDS: tuple[tuple[str, Role], ...] = (
    ("lay out", "scaffolder"),
    ("scaffold", "scaffolder"),
    ("review", "reviewer"),
    ("document", "doc-writer"),
    ("test", "tester"),
)


def plan_of(found: list[str]) -> Plan:
    """The numbered steps as subtasks: each one after the one before, but for a step that runs a command
    (`` `make test` ``), which a tester runs on its own."""
    subtasks: list[Subtask] = []
    previous: str | None = None
    for n, text in enumerate(found, 1):
        commands = _COMMAND.findall(text)
        lowered = text.lower()
        role: Role = (
            "tester" if commands else next((r for w, r in _ROLE_WORDS if w in lowered), "implementer")
        )
        needs = [] if commands or previous is None else [previous]
        subtasks.append(Subtask(name=f"s{n}", role=role, prompt=text, needs=needs, commands=commands))
        if not commands:
            previous = f"s{n}"
    return Plan(subtasks=subtasks)


async def run(request: TaskRequest, backend: Backend, sandbox: Sandbox) -> RoleResult:
    """Ask the backend for a plan and keep its numbered steps, renumbered from 1; asked to expand, answer
    them as a JSON Plan of subtasks for the workflow."""
    completion = await backend.complete("planner", request.prompt, request.model)
    found = steps(completion.text)
    if not found:
        error = "the plan had no numbered steps"
        return RoleResult(ok=False, output="", usage=completion.usage, error=error, failure="invalid_output")
    if request.expand:
        return RoleResult(ok=True, output=codec.encode(plan_of(found)).decode(), usage=completion.usage)
    output = "\n".join(f"{n}. {step}" for n, step in enumerate(found, 1))
    return RoleResult(ok=True, output=output, usage=completion.usage)
