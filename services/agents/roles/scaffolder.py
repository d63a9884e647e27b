"""The scaffolder: lays out a new project (or a new part of one) as a checked patch."""

from __future__ import annotations

from maestro.policy.bundle import Bundle
from proto.v1 import TaskRequest
from services.agents.backends.base import Backend
from services.agents.roles import edits
from services.agents.roles.base import RoleResult
from services.agents.sandbox import Sandbox

SYSTEM = (
    "You are the scaffolder of a software team. Lay out what the task asks for: a README, the package "
    "metadata, a package and a first test, next to the project's files (given after the task, each after "
    "a `--- file: <path>` line), never replacing them. Answer `files`, each new file with its whole "
    "content; `summary`; `commands`, the shell commands that check the layout."
)


async def run(
    request: TaskRequest, backend: Backend, sandbox: Sandbox, bundle: Bundle | None = None
) -> RoleResult:
    """Ask the model for the layout, apply it next to the project files and return the patch and files."""
    return await edits.run(request, backend, "scaffolder", SYSTEM, bundle=bundle)
