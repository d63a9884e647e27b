"""The doc-writer: writes a markdown document for the task."""

from __future__ import annotations

from proto.v1 import ContextFile, TaskRequest
from services.agents.backends.base import Backend
from services.agents.roles.base import RoleResult, slug, unfenced
from services.agents.sandbox import Sandbox


async def run(request: TaskRequest, backend: Backend, sandbox: Sandbox) -> RoleResult:
    """Ask the backend for the document; it is kept as docs/<name>.md and returned as the output."""
    completion = await backend.complete("doc-writer", request.prompt, request.model)
    doc = unfenced(completion.text).strip() + "\n"
    if not doc.startswith("# "):
        doc = f"# {slug(request.prompt).replace('_', ' ').capitalize()}\n\n{doc}"
    path = f"docs/{slug(request.prompt)}.md"
    files = [ContextFile(path=path, content=doc)]
    return RoleResult(ok=True, output=doc, usage=completion.usage, files=files)
