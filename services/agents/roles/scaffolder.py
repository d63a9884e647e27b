"""The scaffolder: lays out a new project (README, pyproject, package, a first test)."""

from __future__ import annotations

from proto.v1 import ContextFile, TaskRequest
from services.agents.backends.base import Backend
from services.agents.roles.base import RoleResult, slug
from services.agents.sandbox import Sandbox


def layout(name: str, summary: str) -> list[ContextFile]:
    """The files of a minimal Python project called `name`."""
    dist = name.replace("_", "-")
    return [
        ContextFile(path="README.md", content=f"# {dist}\n\n{summary.strip()}\n"),
        ContextFile(
            path="pyproject.toml",
            content=(
                '[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"\n\n'
                f'[project]\nname = "{dist}"\nversion = "0.1.0"\nrequires-python = ">=3.11"\n'
            ),
        ),
        ContextFile(path=f"{name}/__init__.py", content=f'"""{dist}."""\n\n__version__ = "0.1.0"\n'),
        ContextFile(
            path=f"tests/test_{name}.py",
            content=f"import {name}\n\n\ndef test_version() -> None:\n    assert {name}.__version__\n",
        ),
    ]


async def run(request: TaskRequest, backend: Backend, sandbox: Sandbox) -> RoleResult:
    """Ask the backend for a summary and lay out a project named after the prompt."""
    completion = await backend.complete("scaffolder", request.prompt, request.model)
    files = layout(slug(request.prompt), completion.text)
    output = "\n".join(["Scaffolded:", *(f"- {f.path}" for f in files)])
    return RoleResult(ok=True, output=output, usage=completion.usage, files=files)
