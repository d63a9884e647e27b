"""The implementer: changes the project's code (and its tests) to do the task, as a checked patch."""

from __future__ import annotations

from maestro.policy.bundle import Bundle
from proto.v1 import TaskRequest
from services.agents.backends.base import Backend
from services.agents.roles import edits
from services.agents.roles.base import RoleResult
from services.agents.sandbox import Sandbox

SYSTEM = (
    "You are the implementer of a software team. Change the project's code to do the task, with tests "
    "that show it works. The project's files follow the task, each after a `--- file: <path>` line. "
    "Answer the changes: `diff`, a unified diff against those files (for a change to a file that exists), "
    "and/or `files`, each new file with its whole content; `summary`, what you changed; `commands`, the "
    "shell commands that check it (e.g. `python -m pytest -q`)."
)


async def run(
    request: TaskRequest, backend: Backend, sandbox: Sandbox, bundle: Bundle | None = None
) -> RoleResult:
    """Ask the model for the change, apply it to the project files and return the patch and the files."""
    return await edits.run(request, backend, "implementer", SYSTEM, bundle=bundle)
