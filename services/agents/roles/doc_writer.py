"""The doc-writer: writes or updates the project's documentation from the changes and the task."""

from __future__ import annotations

from maestro.policy.bundle import Bundle
from proto.v1 import TaskRequest
from services.agents.backends.base import Backend
from services.agents.roles import edits
from services.agents.roles.base import RoleResult
from services.agents.sandbox import Sandbox

SYSTEM = (
    "You are the doc-writer of a software team. Write or update the project's documentation (README.md, "
    "docs/*.md; nothing but documentation) for the task and for the changes of the steps before you, in "
    "Markdown. The project's files follow the task, each after a `--- file: <path>` line. Answer `diff`, a "
    "unified diff against a document that exists, and/or `files`, each new document with its whole content; "
    "and `summary`."
)


async def run(
    request: TaskRequest, backend: Backend, sandbox: Sandbox, bundle: Bundle | None = None
) -> RoleResult:
    """Ask the model for the documentation change, apply it and return the patch and the documents."""
    return await edits.run(request, backend, "doc-writer", SYSTEM, may_change=edits.docs_only, bundle=bundle)
