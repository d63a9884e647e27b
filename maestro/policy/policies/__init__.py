"""Policy families, one module each. Every family is pure: `check(request, policy) -> list[Finding]`.

A family turns what it sees in a request into Findings: a Violation (rule id, location, redacted
evidence, message, fix) plus the action the tenant's policy for that family asks for. The engine
combines every family's findings into one Decision; the strictest action wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from proto.v1 import Violation

Action = Literal["deny", "approve", "redact", "audit"]
"""What to do about a finding: refuse; park for a human; mask it and go on; only record it."""

Mode = Literal["enforce", "audit"]
"""A family in audit mode reports what it would do but never changes the verdict (a dry run)."""


@dataclass(frozen=True)
class Span:
    """A stretch of request text to mask when the action is redact.

    `field` is "prompt", "context[<index>]", "commands[<index>]" or "labels[<key>]"; start and end are
    character offsets into that text.
    """

    field: str
    start: int
    end: int


@dataclass(frozen=True)
class Finding:
    """One violation and the action the policy asks for it."""

    violation: Violation
    action: Action
    span: Span | None = None
