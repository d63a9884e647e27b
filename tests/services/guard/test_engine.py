"""The engine's verdicts: size limit, credentials, cost ceiling, strictest wins, and the cost estimate."""

from __future__ import annotations

from maestro import codec
from maestro.settings import Settings
from proto.v1 import ContextFile, TaskRequest
from services.guard.engine import GuardLimits, estimate_micro_usd, evaluate, strictest

SETTINGS = Settings(max_request_bytes=4096)
LIMITS = GuardLimits.from_settings(SETTINGS)
AWS = "AKIA" + "IOSFODNN7EXAMPLE"


def request(prompt: str = "Plan a CLI that counts words", **kwargs: object) -> TaskRequest:
    return TaskRequest(id="t1", tenant="acme", role="planner", prompt=prompt, **kwargs)  # type: ignore[arg-type]


def judge(req: TaskRequest) -> tuple[str, list[str]]:
    decision = evaluate(req, len(codec.encode(req)), LIMITS)
    return decision.verdict, [v.rule_id for v in decision.violations]


def test_a_clean_request_is_allowed_with_its_estimate() -> None:
    req = request()
    decision = evaluate(req, len(codec.encode(req)), LIMITS)
    assert decision.verdict == "allow"
    assert decision.violations == []
    assert decision.policy_version
    assert decision.estimate_micro_usd == estimate_micro_usd(req, SETTINGS) > 0


def test_an_oversized_request_is_denied_by_the_size_limit() -> None:
    req = request("x" * 5000)
    decision = evaluate(req, len(codec.encode(req)), LIMITS)
    assert decision.verdict == "deny"
    assert [v.rule_id for v in decision.violations] == ["limits.request-too-large"]
    assert "4096" in decision.violations[0].message


def test_a_credential_anywhere_denies() -> None:
    assert judge(request(f"deploy with {AWS}")) == ("deny", ["credentials.aws-access-key"])
    in_file = request(context=[ContextFile(path=".env", content=f"AWS_ACCESS_KEY_ID={AWS}")])
    assert judge(in_file) == ("deny", ["credentials.aws-access-key"])
    assert judge(request(commands=[f"aws configure set key {AWS}"]))[0] == "deny"


def test_the_estimate_grows_with_the_input_at_four_characters_per_token() -> None:
    settings = Settings(
        price_input_micro_usd_per_token=3, price_output_micro_usd_per_token=15, estimate_output_tokens=100
    )
    assert estimate_micro_usd(request(""), settings) == 100 * 15
    assert estimate_micro_usd(request("x" * 400), settings) == 100 * 3 + 100 * 15
    assert estimate_micro_usd(request("x" * 401), settings) == 101 * 3 + 100 * 15
    with_files = request("", context=[ContextFile(path="a.py", content="y" * 396)], commands=["ls"])
    assert estimate_micro_usd(with_files, settings) == 101 * 3 + 100 * 15


def test_a_task_ceiling_below_the_estimate_denies() -> None:
    cost = estimate_micro_usd(request(), SETTINGS)
    assert judge(request(max_cost_micro_usd=cost)) == ("allow", [])
    assert judge(request(max_cost_micro_usd=cost - 1)) == ("deny", ["budget.task-ceiling"])


def test_every_violation_is_reported_together() -> None:
    verdict, rules = judge(request(f"key {AWS}", max_cost_micro_usd=0))
    assert verdict == "deny"
    assert rules == ["credentials.aws-access-key", "budget.task-ceiling"]


def test_the_strictest_verdict_wins() -> None:
    assert strictest([]) == "allow"
    assert strictest(["allow", "redact"]) == "redact"
    assert strictest(["redact", "approve", "allow"]) == "approve"
    assert strictest(["approve", "deny", "redact"]) == "deny"
