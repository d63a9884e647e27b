"""The engine: per-tenant policy, strictest verdict wins, audit only records, redact masks, bundle named."""

from __future__ import annotations

import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maestro import codec
from maestro.estimates import INSTRUCTION_TOKENS, REPAIR_TOKENS, Prices, estimate_micro_usd
from maestro.policy import engine
from maestro.policy.bundle import Bundle, load_default, parse
from maestro.policy.engine import Judgement, evaluate, strictest
from maestro.pricing import Price, PriceTable
from proto.v1 import ContextFile, TaskRequest
from proto.v1.tasks import workspace_path_problem

AWS = "AKIA" + "Z7Q3RTX5KQWE8PLM"
PRICES = Prices(PriceTable(unlisted=Price(3_000_000, 15_000_000)), estimate_output_tokens=100)

# acme pins its data to the EU; globex approves anything over its ceiling; initech only audits residency.
BUNDLE = parse(
    textwrap.dedent(
        """\
        version: test-1
        default:
          max_request_bytes: 4096
          residency:
            workers:
              planner: {cloud: aws, region: eu-west-1}
            models:
              claude: {endpoint: {provider: bedrock, inference_profile: eu.anthropic.claude}}
              gpt: {endpoint: {provider: openai}}
              llama-us: {endpoint: {cloud: aws, region: us-west-2}}
            default_models: {planner: claude}
        tenants:
          acme:
            residency: {allowed: [eu]}
          globex:
            residency: {allowed: [eu]}
            budget: {max_task_micro_usd: 2000, action: approve}
          initech:
            residency: {allowed: [eu], mode: audit}
            budget: {max_task_micro_usd: 2000, action: audit}
        """
    )
)


def request(
    prompt: str = "Plan a CLI that counts words", tenant: str = "acme", **kwargs: object
) -> TaskRequest:
    return TaskRequest(id="t1", tenant=tenant, role="planner", prompt=prompt, **kwargs)  # type: ignore[arg-type]


def judge(req: TaskRequest, bundle: Bundle = BUNDLE) -> Judgement:
    return evaluate(req, len(codec.encode(req)), bundle, PRICES)


def rules(j: Judgement) -> list[tuple[str, bool]]:
    return [(v.rule_id, v.enforced) for v in j.decision.violations]


def test_a_clean_request_is_allowed_with_its_estimate_and_the_bundles_version_and_hash() -> None:
    req = request()
    j = judge(req)
    assert (j.decision.verdict, j.decision.violations) == ("allow", [])
    assert (j.decision.policy_version, j.decision.policy_hash) == ("test-1", BUNDLE.hash)
    assert j.decision.estimate_micro_usd == estimate_micro_usd(req, PRICES) == j.estimate.micro_usd > 0
    assert j.request is req and j.deciding is None


def test_an_oversized_request_is_denied_unread_by_its_tenants_limit() -> None:
    j = judge(request("x" * 5000))
    assert j.decision.verdict == "deny"
    assert rules(j) == [("limits.request-too-large", True)]
    assert "4096" in j.decision.violations[0].message
    assert j.decision.policy_hash == BUNDLE.hash


def test_a_credential_anywhere_denies_under_the_shipped_bundle() -> None:
    bundle = load_default()
    for req in (
        request(f"deploy with {AWS}"),
        request(context=[ContextFile(path=".env", content=f"AWS_ACCESS_KEY_ID={AWS}")]),
        request(commands=[f"aws configure set key {AWS}"]),
    ):
        j = judge(req, bundle)
        assert j.decision.verdict == "deny"
        assert j.decision.violations[0].policy == "credentials"
        assert all(AWS not in v.evidence + v.message for v in j.decision.violations)


def held_for(text_tokens: int) -> int:
    """Two calls, each reading the text and the role's instruction, the second also the first answer (100
    tokens) and a repair note, each writing 100 tokens: at 3 and 15 micro-USD a token."""
    read = text_tokens + INSTRUCTION_TOKENS
    return 3 * (2 * read + 100 + REPAIR_TOKENS) + 15 * 2 * 100


def test_the_estimate_grows_with_the_input_at_four_characters_per_token() -> None:
    assert estimate_micro_usd(request(""), PRICES) == held_for(0)
    assert estimate_micro_usd(request("x" * 400), PRICES) == held_for(100)
    assert estimate_micro_usd(request("x" * 401), PRICES) == held_for(101)
    with_files = request("", context=[ContextFile(path="a.py", content="y" * 396)], commands=["ls"])
    assert estimate_micro_usd(with_files, PRICES) == held_for(101)


def test_a_task_ceiling_below_the_estimate_denies() -> None:
    cost = estimate_micro_usd(request(), PRICES)
    assert judge(request(max_cost_micro_usd=cost)).decision.verdict == "allow"
    j = judge(request(max_cost_micro_usd=cost - 1))
    assert (j.decision.verdict, rules(j)) == ("deny", [("budget.task-ceiling", True)])


def test_each_tenant_is_judged_by_its_own_policy() -> None:
    us_model = request(model="llama-us")
    assert judge(us_model).decision.verdict == "deny"  # acme pins the EU
    assert judge(request(tenant="other", model="llama-us")).decision.verdict == "allow"  # no pin


def test_the_strictest_verdict_wins() -> None:
    assert strictest([]) == "allow"
    assert strictest(["allow", "redact"]) == "redact"
    assert strictest(["redact", "approve", "allow"]) == "approve"
    assert strictest(["approve", "deny", "redact"]) == "deny"
    # globex: an unknown endpoint (approve) and a ceiling broken (approve) -> approve ...
    expensive = "x" * 2000
    j = judge(request(expensive, tenant="globex", model="gpt"))
    assert j.decision.verdict == "approve"
    assert rules(j) == [("residency.unknown-location", True), ("budget.task-ceiling", True)]
    # ... and a model outside the EU on top (deny) -> deny, every violation still reported.
    j = judge(request(expensive, tenant="globex", model="llama-us"))
    assert j.decision.verdict == "deny"
    assert rules(j) == [("residency.model-outside", True), ("budget.task-ceiling", True)]
    assert j.deciding is not None and j.deciding.rule_id == "residency.model-outside"


def test_audit_mode_and_audit_actions_record_violations_without_changing_the_verdict() -> None:
    j = judge(request("x" * 2000, tenant="initech", model="llama-us"))
    assert j.decision.verdict == "allow"
    assert rules(j) == [("residency.model-outside", False), ("budget.task-ceiling", False)]
    assert j.deciding is None


def test_redact_forwards_the_request_with_every_secret_masked() -> None:
    bundle = parse("version: r1\ndefault:\n  credentials: {action: redact}\n")
    req = request(
        f"deploy with {AWS}",
        context=[ContextFile(path="a.py", content="x = 1\n"), ContextFile(path=".env", content=f"K={AWS}\n")],
        commands=["make test"],
    )
    j = judge(req, bundle)
    assert j.decision.verdict == "redact"
    assert [v.location for v in j.decision.violations] == ["prompt:1:13", "context:.env:1:3"]
    forwarded = codec.encode(j.request).decode()
    assert AWS not in forwarded
    assert j.request.prompt.startswith("deploy with [REDACTED")
    assert j.request.context[0] == req.context[0] and j.request.commands == req.commands
    assert (j.request.id, j.request.tenant) == (req.id, req.tenant)


def test_a_redaction_is_kept_when_a_stricter_verdict_wins() -> None:
    bundle = parse(
        "version: r1\ndefault:\n  credentials: {action: redact}\n  budget: {max_task_micro_usd: 1}\n"
    )
    j = judge(request(f"deploy with {AWS}"), bundle)
    assert j.decision.verdict == "deny"
    assert AWS not in j.request.prompt  # whatever happens next (a human's approval) sees no secret


@settings(max_examples=150, deadline=None)
@given(
    prompt=st.text(max_size=3000),
    files=st.lists(
        st.tuples(
            st.text(min_size=1, max_size=40).filter(lambda p: workspace_path_problem(p) is None),
            st.text(max_size=2000),
        ),
        max_size=3,
    ),
    commands=st.lists(st.text(max_size=200), max_size=3),
    tenant=st.sampled_from(["acme", "globex", "initech", "other"]),
    model=st.sampled_from([None, "claude", "gpt", "llama-us", "nope"]),
)
def test_any_request_yields_a_decision(
    prompt: str, files: list[tuple[str, str]], commands: list[str], tenant: str, model: str | None
) -> None:
    req = request(
        prompt,
        tenant=tenant,
        model=model,
        context=[ContextFile(path=p, content=c) for p, c in files],
        commands=commands,
    )
    j = judge(req)
    assert j.decision.verdict in ("allow", "redact", "approve", "deny")
    assert j.decision.policy_version == "test-1"
    # The engine turns a family that raises into `<family>.error` (sent to a human): that must never be
    # what judged a request, or a family's crash would pass for a decision.
    assert not [v.rule_id for v in j.decision.violations if v.rule_id.endswith(".error")]


def test_a_family_that_raises_sends_the_request_to_a_human_and_the_rest_still_judge(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*_: object) -> list[object]:
        raise RuntimeError("a family bug")

    monkeypatch.setattr(engine.licenses, "check", broken)
    j = judge(request("deploy with AKIA" + "Z7Q3RTX5KQWE8PLM", tenant="other"))
    rules = [v.rule_id for v in j.decision.violations]
    assert "licenses.error" in rules and any(r.startswith("credentials.") for r in rules)
    assert j.decision.verdict == "deny"  # the credential still denies; the crash alone would ask a human
    monkeypatch.setattr(engine.credentials, "check", broken)
    j = judge(request("plain words", tenant="other"))
    assert j.decision.verdict == "approve" and "credentials.error" in [
        v.rule_id for v in j.decision.violations
    ]
