"""What the guard decides about a request, and why."""

from __future__ import annotations

from datetime import datetime
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


class PolicyInForce(Message, frozen=True):
    """The policy bundle the guards judge by, as GET, PUT and DELETE /v1/policy answer (every field always
    present): `maestro policy show` with the bundle's YAML."""

    version: str
    hash: str
    """sha256 of the bundle's canonical encoding: what every decision it made names."""
    source: Literal["shipped", "pushed"]
    revision: int
    """The policy bucket's revision of the entry (0: nothing was ever pushed)."""
    pushed_by: str | None
    """Who pushed it, or reset to the shipped bundle; None when nothing was or nobody is known."""
    pushed_at: datetime | None
    tenants: tuple[str, ...]
    """The tenants with an override of their own (the others get the default policy)."""
    yaml: str
    """The bundle as the guards parse it: the pushed text, or the shipped file."""
