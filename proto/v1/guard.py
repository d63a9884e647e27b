"""What the guard decides about a request, and why."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from msgspec import Meta

from proto.base import Message
from proto.v1.ids import Tenant

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


Count = Annotated[int, Meta(ge=0, description="how many times")]


class DecisionTally(Message, frozen=True):
    """How many requests of one tenant one guard decided in one interval, by verdict and by rule that fired,
    on maestro.v1.tally.<tenant>: what the console charts, instead of scanning the events stream."""

    tenant: Tenant
    at: datetime
    """The start of the interval (UTC)."""
    interval_s: Annotated[float, Meta(ge=0)]
    """How long the interval lasted: MAESTRO_TALLY_S, or less for the last one before the guard stopped."""
    guard: str
    """The guard instance that decided (its MAESTRO_WORKER name)."""
    bundle_hash: str = ""
    """The policy bundle of the interval's last decision (a bundle pushed within the interval: the newer)."""
    verdicts: dict[str, Count] = {}
    """Decisions by verdict: allow, redact, approve, deny."""
    rules: dict[str, Count] = {}
    """Decisions by rule id that fired on them (audit-only rules too): one per decision, however many places
    of the request it flagged."""


class DecisionPoint(Message, frozen=True):
    """One step of a DecisionHistory: the decisions of the guards' tallies that began within it, summed."""

    at: datetime
    """The start of the step (UTC)."""
    verdicts: dict[str, Count]
    """Decisions by verdict (none: an empty mapping)."""
    rules: dict[str, Count]
    """Decisions by rule id that fired on them."""


class DecisionHistory(Message, frozen=True):
    """GET /v1/policy/decisions: the guard's decisions by verdict and rule over time, summed over the guards
    (and over the tenants the caller sees, unless it named one), every field always present."""

    since: datetime
    """The start of the window (UTC); it ends now."""
    step_s: float
    """How long each point's step is: `step`, or the window / 60, never less than the guards' tally
    interval (MAESTRO_TALLY_S)."""
    points: list[DecisionPoint]
    """One per step from `since` to now, oldest first; a step without decisions has empty mappings."""
    verdicts: dict[str, Count]
    """The whole window's decisions by verdict."""
    rules: dict[str, Count]
    """The whole window's decisions by rule id that fired on them."""
    partial: bool
    """True when there were more tallies than one answer reads: the oldest are counted, the newest not."""
