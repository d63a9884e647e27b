"""What every role returns, the runner signature, and small text helpers the roles share."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from proto.v1 import ContextFile, TaskRequest, Usage
from proto.v1.tasks import FailureKind
from services.agents.backends.base import Backend
from services.agents.sandbox import Sandbox


@dataclass(frozen=True)
class RoleResult:
    """The outcome of one role's work: ok with output (and files), or not ok with an error and its kind."""

    ok: bool
    output: str
    usage: Usage
    files: list[ContextFile] = field(default_factory=list)
    error: str = ""
    failure: FailureKind = "error"
    """Why it was not ok: `test_failed` and `invalid_output` would fail the same way again (no retry)."""


Runner = Callable[[TaskRequest, Backend, Sandbox], Awaitable[RoleResult]]

_WORD = re.compile(r"[a-z0-9]+")
_FENCE = re.compile(r"^```[\w+-]*\n(.*?)\n?```\s*$", re.DOTALL)


def slug(prompt: str, words: int = 3) -> str:
    """A Python-identifier name from the first words of a prompt (`task` when it has none)."""
    found = _WORD.findall(prompt.lower())[:words]
    name = "_".join(found) or "task"
    return f"p_{name}" if name[0].isdigit() else name


def unfenced(text: str) -> str:
    """The body of a single fenced code block, or the text unchanged when it is not one."""
    match = _FENCE.match(text.strip())
    return match.group(1) + "\n" if match else text
