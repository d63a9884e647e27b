"""A step's prompt and context, filled in from the steps it needs (pure, no I/O).

Templates name `{{ steps.<name>.output }}`, `{{ steps.<name>.state }}`, `{{ steps.<name>.error }}` and
`{{ workflow.id }}`; nothing else is read, and a filled-in value is never read as a template again. Every step
a step needs directly also hands it its output as a context file, `.maestro/steps/<name>.md`, with the
names of the artifacts it stored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from proto.v1 import ContextFile, TaskRecord

_FIELD = re.compile(r"\{\{\s*(?:steps\.([a-z][a-z0-9_]*)\.(output|state|error)|workflow\.id)\s*\}\}")
MAX_OUTPUT_CHARS = 64 * 1024
"""The most of a need's output one substitution or context file carries (outputs are bounded as much)."""


def render(prompt: str, workflow_id: str, steps: Mapping[str, TaskRecord]) -> str:
    """`prompt` with every field replaced; a step with no record yet reads as empty."""

    def value(match: re.Match[str]) -> str:
        name, part = match.group(1), match.group(2)
        if name is None:
            return workflow_id
        record = steps.get(name)
        if record is None:
            return ""
        if part == "output":
            return record.output[:MAX_OUTPUT_CHARS]
        if part == "state":
            return record.state
        return (record.error or (record.reason if record.state != "succeeded" else ""))[:MAX_OUTPUT_CHARS]

    return _FIELD.sub(value, prompt)


def context_of(needs: list[str], steps: Mapping[str, TaskRecord]) -> list[ContextFile]:
    """One file per need that has a record: its state, output and artifacts."""
    files = []
    for name in needs:
        record = steps.get(name)
        if record is None:
            continue
        lines = [f"# step {name}: {record.state}", ""]
        if record.output:
            lines += [record.output[:MAX_OUTPUT_CHARS], ""]
        if record.error:
            lines += ["## error", record.error[:MAX_OUTPUT_CHARS], ""]
        if record.artifacts:
            lines += ["## artifacts", *(f"- {a.name} ({a.size} bytes)" for a in record.artifacts), ""]
        files.append(ContextFile(path=f".maestro/steps/{name}.md", content="\n".join(lines)))
    return files
