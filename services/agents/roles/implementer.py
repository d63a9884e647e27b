"""The implementer: writes one Python file that does the task."""

from __future__ import annotations

from proto.v1 import ContextFile, TaskRequest
from services.agents.backends.base import Backend
from services.agents.roles.base import RoleResult, slug, unfenced
from services.agents.sandbox import Sandbox


def target(request: TaskRequest) -> str:
    """Where the code goes: the first Python file given as context, else a module named after the prompt."""
    for file in request.context:
        if file.path.endswith(".py"):
            return file.path
    return f"{slug(request.prompt)}.py"


async def run(request: TaskRequest, backend: Backend, sandbox: Sandbox) -> RoleResult:
    """Ask the backend for code and keep it as one file, if it compiles."""
    completion = await backend.complete("implementer", request.prompt, request.model)
    path = target(request)
    code = unfenced(completion.text)
    try:
        compile(code, path, "exec", dont_inherit=True)
    except SyntaxError as exc:
        error = f"{path}:{exc.lineno}: {exc.msg}"
        return RoleResult(ok=False, output="", usage=completion.usage, error=error, failure="invalid_output")
    lines = code.count("\n")
    return RoleResult(
        ok=True,
        output=f"Wrote {path} ({lines} lines)\n\n{code}",
        usage=completion.usage,
        files=[ContextFile(path=path, content=code)],
    )
