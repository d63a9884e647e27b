"""The guard's judgement of one request under a policy bundle: every family runs, the strictest wins.

Pure: no I/O. The same function judges requests in the guard service, in `maestro guard eval` and in
`maestro check-pr`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec

from maestro import pricing
from maestro.pricing import PER_MILLION, Price, PricedSettings, PriceTable
from proto.v1 import Decision, TaskRequest, Verdict, Violation
from proto.v1.ids import MAX_MICRO_USD
from services.guard.core.bundle import Bundle, TenantPolicy
from services.guard.core.policies import Action, Finding, budget, commands, credentials, licenses, residency

BYTES_PER_TOKEN = 4

_RANK: dict[Verdict, int] = {"allow": 0, "redact": 1, "approve": 2, "deny": 3}


class Offer(PricedSettings, Protocol):
    """What a deployment offers a task: the models its agents serve, what their tokens cost, and the
    output assumed before a task runs (Settings has all of it)."""

    @property
    def estimate_output_tokens(self) -> int: ...
    @property
    def models(self) -> tuple[str, ...]: ...


def _default_table() -> PriceTable:
    return PriceTable(unlisted=Price(3 * PER_MILLION, 15 * PER_MILLION))


@dataclass(frozen=True)
class Prices:
    """What an estimate is priced with and the models served, as Settings has them (Prices.of)."""

    table: PriceTable = field(default_factory=_default_table)
    """The price of each model (MAESTRO_PRICING); by default 3 and 15 USD per million tokens for all."""
    estimate_output_tokens: int = 1024
    models: tuple[str, ...] = ()
    """The models the agents serve, the default first; empty when judging offline (any model, none set)."""

    @classmethod
    def of(cls, offer: Offer) -> Prices:
        """The prices and models of anything that has them (Settings); raises PricingError."""
        return cls(pricing.from_settings(offer), offer.estimate_output_tokens, offer.models)


DEFAULT_PRICES = Prices()


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


@dataclass(frozen=True)
class Judgement:
    """The decision on a request and the request to forward (masked when anything was redacted)."""

    decision: Decision
    request: TaskRequest
    estimate: Estimate
    deciding: Violation | None = None
    """The first enforced violation whose action is the verdict (None when allowed)."""


def text_chars(request: TaskRequest) -> int:
    """The characters a model would read: prompt, context files (path and content) and commands."""
    return (
        len(request.prompt)
        + sum(len(f.path) + len(f.content) for f in request.context)
        + sum(len(c) for c in request.commands)
    )


def estimate(request: TaskRequest, prices: Prices = DEFAULT_PRICES) -> Estimate:
    """The expected usage of a request: ~4 characters per input token, plus the assumed output, at the
    price of the request's model (nothing for a model without a price: the budget refuses to hold for it)."""
    input_tokens = -(-text_chars(request) // BYTES_PER_TOKEN)
    output_tokens = prices.estimate_output_tokens
    price = prices.table.price(request.model or "")
    return Estimate(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        # Capped at the bound on money, so the estimate stays a value every message can carry: a task that
        # expensive is refused by any budget (none can be larger).
        micro_usd=min(price.cost(input_tokens, output_tokens), MAX_MICRO_USD) if price else 0,
    )


def estimate_micro_usd(request: TaskRequest, prices: Prices = DEFAULT_PRICES) -> int:
    """The expected cost of a request in micro-USD."""
    return estimate(request, prices).micro_usd


def strictest(verdicts: Iterable[Verdict]) -> Verdict:
    """The strictest of some verdicts (deny > approve > redact > allow); allow when there are none."""
    return max(verdicts, key=_RANK.__getitem__, default="allow")


def _families(
    policy: TenantPolicy, cost: int
) -> Iterable[tuple[str, Any, Callable[[TaskRequest], list[Finding]]]]:
    """(family, its config, its check) in the order their violations are reported."""
    yield "credentials", policy.credentials, lambda r: credentials.check(r, policy.credentials)
    yield "licenses", policy.licenses, lambda r: licenses.check(r, policy.licenses)
    yield "commands", policy.commands, lambda r: commands.check(r, policy.commands)
    yield "residency", policy.residency, lambda r: residency.check(r, policy.residency)
    yield "budget", policy.budget, lambda r: budget.check(r, policy.budget, cost)


def with_model(request: TaskRequest, models: tuple[str, ...]) -> TaskRequest:
    """The request naming the model it will run on: its own, or the first of `models` when it names none."""
    if request.model is None and models:
        return msgspec.structs.replace(request, model=models[0])
    return request


def _unserved(request: TaskRequest, models: tuple[str, ...]) -> Violation | None:
    if not models or request.model is None or request.model in models:
        return None
    served = ", ".join(models[:10]) + (", ..." if len(models) > 10 else "")
    return Violation(
        policy="models",
        rule_id="models.not-served",
        severity="medium",
        location="model",
        message=f"no agent here runs the model {request.model!r}; the models served are: {served}",
        fix="ask for a served model, or leave the model out to use the default; an operator adds models "
        "with MAESTRO_MODELS",
    )


def _too_large(size: int, limit: int) -> Violation | None:
    if size <= limit:
        return None
    return Violation(
        policy="limits",
        rule_id="limits.request-too-large",
        severity="medium",
        location="request",
        message=f"the request is {size} bytes; the limit is {limit}",
        fix="send large inputs as fewer or smaller context files",
    )


def evaluate(request: TaskRequest, size: int, bundle: Bundle, pricing: Prices = DEFAULT_PRICES) -> Judgement:
    """Judge a request whose encoded form is `size` bytes by its tenant's policy in `bundle`.

    The request judged and forwarded names the model it will run on (the default when it named none);
    a model the agents do not serve is denied before anything else. Audit-mode families and findings
    whose action is "audit" are reported with enforced=False and do not change the verdict. Never raises
    on any request.
    """
    models = pricing.models
    request = with_model(request, models)
    policy = bundle.policy(request.tenant)
    expected = estimate(request, pricing)
    # Denied whatever else it holds; not scanning an oversized request keeps it cheap.
    refused = _too_large(size, policy.max_request_bytes) or _unserved(request, models)
    if refused is not None:
        return Judgement(_decision(bundle, "deny", [refused], expected), request, expected, refused)

    verdicts: list[tuple[Verdict, Violation]] = []
    violations: list[Violation] = []
    to_mask: list[Finding] = []
    for family, config, check in _families(policy, expected.micro_usd):
        try:
            findings = check(request)
        except Exception as exc:
            # A family that fails must not let the request through unseen, nor crash the guard.
            findings = [_failed(family, exc)]
        audit_only = getattr(config, "mode", "enforce") == "audit"
        for n, finding in enumerate(findings):
            action: Action = finding.action
            enforced = not audit_only and action != "audit"
            if enforced:
                if action == "redact" and finding.span is None:
                    action = "deny"  # nothing says where it is, so it cannot be masked: never forward it
                verdicts.append((action, finding.violation))  # type: ignore[arg-type]
                if action == "redact":
                    to_mask.append(finding)
            if n < policy.max_violations:
                v = finding.violation
                violations.append(
                    v if enforced == v.enforced else msgspec.structs.replace(v, enforced=enforced)
                )
    verdict = strictest(v for v, _ in verdicts)
    deciding = next((why for v, why in verdicts if v == verdict), None)
    # Masking is the credentials family's (it knows every field a span may name), whoever found the span.
    forward = credentials.redact(request, to_mask) if to_mask else request
    return Judgement(_decision(bundle, verdict, violations, expected), forward, expected, deciding)


def _failed(family: str, exc: Exception) -> Finding:
    return Finding(
        Violation(
            policy=family,
            rule_id=f"{family}.error",
            severity="high",
            location="request",
            message=f"the {family} policy could not judge this request ({type(exc).__name__})",
            fix="a human must look at it; report the request to the Maestro maintainers",
        ),
        "approve",
    )


def _decision(bundle: Bundle, verdict: Verdict, violations: list[Violation], expected: Estimate) -> Decision:
    return Decision(
        verdict=verdict,
        violations=violations,
        policy_version=bundle.version,
        policy_hash=bundle.hash,
        estimate_micro_usd=expected.micro_usd,
    )
