"""The planner: breaks a task into numbered steps."""

from __future__ import annotations

import re

from proto.v1 import TaskRequest
from services.agents.backends.base import Backend
from services.agents.roles.base import RoleResult
from services.agents.sandbox import Sandbox

_STEP = re.compile(r"^\s*\d+[.)]\s+(\S.*?)\s*$")


def steps(text: str) -> list[str]:
    """The numbered lines of a plan (`1. ...` or `1) ...`), in order, without their numbers."""
    return [m.group(1) for m in map(_STEP.match, text.splitlines()) if m]


async def run(request: TaskRequest, backend: Backend, sandbox: Sandbox) -> RoleResult:
    """Ask the backend for a plan and keep its numbered steps, renumbered from 1."""
    completion = await backend.complete("planner", request.prompt, request.model)
    found = steps(completion.text)
    if not found:
        error = "the plan had no numbered steps"
        return RoleResult(ok=False, output="", usage=completion.usage, error=error, failure="invalid_output")
    output = "\n".join(f"{n}. {step}" for n, step in enumerate(found, 1))
    return RoleResult(ok=True, output=output, usage=completion.usage)
