"""The reviewer: counts the lines of each context file and lists what a reviewer would flag."""

from __future__ import annotations

import re
from dataclasses import dataclass

from proto.v1 import ContextFile, TaskRequest
from services.agents.backends.base import Backend
from services.agents.roles.base import RoleResult
from services.agents.sandbox import Sandbox

MAX_LINE = 110
MAX_FILE_LINES = 400
_MARKER = re.compile(r"\b(TODO|FIXME|XXX|HACK)\b")
_PROMPT_FILE_CHARS = 8000


@dataclass(frozen=True)
class Finding:
    """One thing to fix: where (path, line; 0 for the whole file) and what."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.message}"


def findings(file: ContextFile) -> list[Finding]:
    """What a careful reviewer flags in one file: length, long lines, markers, stray whitespace."""
    lines = file.content.splitlines()
    found: list[Finding] = []
    if len(lines) > MAX_FILE_LINES:
        found.append(Finding(file.path, 0, f"{len(lines)} lines; split it (over {MAX_FILE_LINES})"))
    for n, line in enumerate(lines, 1):
        if len(line) > MAX_LINE:
            found.append(Finding(file.path, n, f"line is {len(line)} characters (over {MAX_LINE})"))
        if marker := _MARKER.search(line):
            found.append(Finding(file.path, n, f"leftover {marker.group(1)}"))
        if line != line.rstrip():
            found.append(Finding(file.path, n, "trailing whitespace"))
    if file.content and not file.content.endswith("\n"):
        found.append(Finding(file.path, 0, "no newline at end of file"))
    return found


def review(files: list[ContextFile]) -> str:
    """The review text: line counts per file, then every finding (or that there are none)."""
    if not files:
        return "Nothing to review: no files were given."
    counts = [(f.path, len(f.content.splitlines())) for f in files]
    total = sum(n for _, n in counts)
    lines = [f"Reviewed {len(files)} files ({total} lines)", *(f"- {p}: {n} lines" for p, n in counts)]
    found = [finding for f in files for finding in findings(f)]
    if not found:
        return "\n".join([*lines, "", "Findings: none"])
    return "\n".join([*lines, "", f"Findings ({len(found)}):", *(f"- {f}" for f in found)])


def _prompt(request: TaskRequest) -> str:
    parts = [request.prompt]
    for f in request.context:
        parts.append(f"--- {f.path}\n{f.content[:_PROMPT_FILE_CHARS]}")
    return "\n\n".join(parts)


async def run(request: TaskRequest, backend: Backend, sandbox: Sandbox) -> RoleResult:
    """Review the context files: counts and findings from the files, a summary from the backend."""
    completion = await backend.complete("reviewer", _prompt(request), request.model)
    output = f"{review(request.context)}\n\nSummary: {completion.text.strip()}"
    return RoleResult(ok=True, output=output, usage=completion.usage)
