"""What every role returns and the runner signature."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from maestro.policy.bundle import Bundle
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


Runner = Callable[[TaskRequest, Backend, Sandbox, Bundle], Awaitable[RoleResult]]
"""A role's work: the task, the model backend, the sandbox, and the policy bundle as the task's tenant sees it
(Bundle.as_seen_by), which judges what the role itself checks (commands a model proposes, a change under
review)."""


def invalid(error: str, usage: Usage) -> RoleResult:
    """A failure that running the task again would repeat: the model's (or an earlier step's) output was
    not valid."""
    return RoleResult(ok=False, output="", usage=usage, error=error, failure="invalid_output")
