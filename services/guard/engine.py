"""The guard's verdict on one request: size limit, credentials, cost ceiling; the strictest verdict wins."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from maestro.settings import Settings
from proto.v1 import Decision, TaskRequest, Verdict, Violation
from services.guard import credentials

POLICY_VERSION = "builtin-1"
BYTES_PER_TOKEN = 4

_RANK: dict[Verdict, int] = {"allow": 0, "redact": 1, "approve": 2, "deny": 3}


class Pricing(Protocol):
    """What an estimate needs: default token prices and the output assumed before a task runs."""

    @property
    def price_input_micro_usd_per_token(self) -> int: ...
    @property
    def price_output_micro_usd_per_token(self) -> int: ...
    @property
    def estimate_output_tokens(self) -> int: ...


@dataclass(frozen=True)
class GuardLimits:
    """The knobs the engine judges by, taken once from Settings."""

    max_request_bytes: int
    """Largest encoded request allowed."""
    price_input_micro_usd_per_token: int
    """Price of one input token."""
    price_output_micro_usd_per_token: int
    """Price of one output token."""
    estimate_output_tokens: int
    """Output tokens assumed when estimating."""
    max_violations: int = 20
    """Violations reported per policy: one is enough to deny, and the list must fit in an event."""

    @classmethod
    def from_settings(cls, settings: Settings) -> GuardLimits:
        """The limits these settings describe."""
        return cls(
            max_request_bytes=settings.max_request_bytes,
            price_input_micro_usd_per_token=settings.price_input_micro_usd_per_token,
            price_output_micro_usd_per_token=settings.price_output_micro_usd_per_token,
            estimate_output_tokens=settings.estimate_output_tokens,
        )


@dataclass(frozen=True)
class Estimate:
    """What a task is expected to consume before it runs."""

    input_tokens: int
    output_tokens: int
    micro_usd: int

    @property
    def tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens


def text_chars(request: TaskRequest) -> int:
    """The characters a model would read: prompt, context files (path and content) and commands."""
    return (
        len(request.prompt)
        + sum(len(f.path) + len(f.content) for f in request.context)
        + sum(len(c) for c in request.commands)
    )


def estimate(request: TaskRequest, pricing: Pricing) -> Estimate:
    """The expected usage of a request: ~4 characters per input token, plus the assumed output."""
    input_tokens = -(-text_chars(request) // BYTES_PER_TOKEN)
    output_tokens = pricing.estimate_output_tokens
    return Estimate(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        micro_usd=input_tokens * pricing.price_input_micro_usd_per_token
        + output_tokens * pricing.price_output_micro_usd_per_token,
    )


def estimate_micro_usd(request: TaskRequest, pricing: Pricing) -> int:
    """The expected cost of a request in micro-USD (`pricing` is Settings or GuardLimits)."""
    return estimate(request, pricing).micro_usd


def strictest(verdicts: list[Verdict]) -> Verdict:
    """The strictest of some verdicts (deny > approve > redact > allow); allow when there are none."""
    return max(verdicts, key=_RANK.__getitem__, default="allow")


def evaluate(request: TaskRequest, size: int, limits: GuardLimits) -> Decision:
    """The decision on a request whose encoded form is `size` bytes."""
    if size > limits.max_request_bytes:
        # Denied whatever else it holds; not scanning it keeps an oversized request cheap.
        return Decision(
            verdict="deny",
            violations=[
                Violation(
                    policy="limits",
                    rule_id="limits.request-too-large",
                    severity="medium",
                    location="request",
                    message=f"the request is {size} bytes; the limit is {limits.max_request_bytes}",
                    fix="send large inputs as fewer or smaller context files",
                )
            ],
            policy_version=POLICY_VERSION,
        )
    verdicts: list[Verdict] = []
    violations = credentials.scan(request, limits.max_violations)
    if violations:
        verdicts.append("deny")
    cost = estimate_micro_usd(request, limits)
    ceiling = request.max_cost_micro_usd
    if ceiling is not None and cost > ceiling:
        verdicts.append("deny")
        violations.append(
            Violation(
                policy="budget",
                rule_id="budget.task-ceiling",
                severity="medium",
                location="max_cost_micro_usd",
                message=f"the estimated cost {cost} micro-USD exceeds the task's ceiling of {ceiling}",
                fix="raise max_cost_micro_usd or shorten the prompt and context",
            )
        )
    return Decision(
        verdict=strictest(verdicts),
        violations=violations,
        policy_version=POLICY_VERSION,
        estimate_micro_usd=cost,
    )
