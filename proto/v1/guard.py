"""What the guard decides about a request, and why."""

from __future__ import annotations

from typing import Literal

from proto.base import Message

Verdict = Literal["allow", "redact", "approve", "deny"]
Severity = Literal["low", "medium", "high", "critical"]


class Violation(Message, frozen=True):
    """One rule a request broke; `evidence` is redacted and never holds the secret itself."""

    policy: str
    rule_id: str
    severity: Severity = "high"
    location: str = ""
    evidence: str = ""
    message: str = ""
    fix: str = ""
    enforced: bool = True
    """False when the family only audits: the violation is recorded but did not change the verdict."""


class Decision(Message, frozen=True):
    """The guard's verdict on one request, with every violation and the policy that judged it."""

    verdict: Verdict
    violations: list[Violation] = []
    policy_version: str = ""
    policy_hash: str = ""
    estimate_micro_usd: int = 0
    max_plan_subtasks: int | None = None
    """For a planner asked to expand: the most subtasks its plan may add, by the tenant's bundle."""
