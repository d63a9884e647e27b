"""The guard's judgement of one request under a policy bundle: every family runs, the strictest wins.

Pure: no I/O. The same function judges requests in the guard service, in `maestro guard eval` and in
`maestro check-pr`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import msgspec

from maestro.estimates import DEFAULT_PRICES, Estimate, Prices, estimate
from maestro.policy.bundle import Bundle, TenantPolicy
from maestro.policy.policies import Action, Finding, budget, commands, credentials, licenses, residency
from maestro.policy.policies.commands.shell import parsed
from maestro.policy.policies.credentials.program import program
from proto.v1 import Decision, TaskRequest, Verdict, Violation
from proto.v1.ids import is_human

_RANK: dict[Verdict, int] = {"allow": 0, "redact": 1, "approve": 2, "deny": 3}


@dataclass(frozen=True)
class Judgement:
    """The decision on a request and the request to forward (masked when anything was redacted)."""

    decision: Decision
    request: TaskRequest
    estimate: Estimate
    deciding: Violation | None = None
    """The first enforced violation whose action is the verdict (None when allowed)."""


def warm() -> None:
    """Build what judging takes ahead of the first request: the credentials program and the shell parser's
    tables (about 0.3 s), which are built when first used so that processes that never judge, such as the
    orchestrator and every CLI command, do not pay for them at start."""
    program()
    parsed("true")


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


def with_model(request: TaskRequest, pricing: Prices) -> TaskRequest:
    """The request naming the model it will run on: its own, else its role's default, else the first served
    (unchanged when no model is served, judged offline, and for a person's task, which runs on none)."""
    if is_human(request.role):
        return request
    model = pricing.model_for(request.role, request.model)
    if request.model is None and model:
        return msgspec.structs.replace(request, model=model)
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
    request = with_model(request, pricing)
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
    decision = _decision(bundle, verdict, violations, expected)
    if request.expand:
        decision = msgspec.structs.replace(decision, max_plan_subtasks=policy.max_plan_subtasks)
    return Judgement(decision, forward, expected, deciding)


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
