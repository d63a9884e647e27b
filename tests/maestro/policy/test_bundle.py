"""Policy bundles: decoding, per-tenant overrides merged over the default, the hash, and errors with lines."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import msgspec
import pytest

from maestro.policy.bundle import (
    TOO_DEEP,
    BundleError,
    Problem,
    TenantPolicy,
    load_default,
    merge,
    parse,
    with_tenant,
)
from maestro.policy.engine import evaluate
from proto.v1 import TaskRequest

BUNDLE = textwrap.dedent(
    """\
    version: "2025-06-01"
    default:
      budget: {max_task_micro_usd: 500000}
      residency:
        workers:
          planner: {cloud: aws, region: eu-west-1}
        stores:
          artifacts: {cloud: aws, region: eu-west-1}
    tenants:
      acme:
        residency:
          allowed: [eu]
      globex:
        max_request_bytes: 4096
        budget: {action: approve}
    """
)


def problems(text: str) -> list[Problem]:
    with pytest.raises(BundleError) as caught:
        parse(textwrap.dedent(text))
    return caught.value.problems


def own(policy: TenantPolicy) -> TenantPolicy:
    """A tenant's policy without the other tenants' pins the bundle fills in."""
    return msgspec.structs.replace(policy, residency=msgspec.structs.replace(policy.residency, peers=None))


def only(text: str) -> tuple[int, str, str]:
    (problem,) = problems(text)
    return problem.line, problem.path, problem.message


def test_the_shipped_bundle_is_valid_and_has_a_version_and_hash() -> None:
    bundle = load_default()
    assert bundle.version
    assert re.fullmatch(r"[0-9a-f]{64}", bundle.hash)
    assert bundle.tenants == {}
    assert bundle.policy("anyone") == bundle.default


def test_a_tenant_override_merges_field_by_field_over_the_default() -> None:
    bundle = parse(BUNDLE)
    acme, globex = bundle.policy("acme"), bundle.policy("globex")
    # acme pins its data and keeps every other residency setting and family of the default.
    assert acme.residency.allowed == ["eu"]
    assert acme.residency.workers == bundle.default.residency.workers
    assert acme.residency.stores == bundle.default.residency.stores
    assert acme.budget == bundle.default.budget
    # globex changes one field of budget: the ceiling of the default stays.
    assert (globex.budget.action, globex.budget.max_task_micro_usd) == ("approve", 500_000)
    assert globex.max_request_bytes == 4096 and acme.max_request_bytes == bundle.default.max_request_bytes
    assert bundle.policy("initech") is bundle.default


def test_mappings_merge_and_lists_replace() -> None:
    base = {"a": {"x": 1, "y": [1, 2]}, "b": 1}
    assert merge(base, {"a": {"y": [3]}, "c": 2}) == {"a": {"x": 1, "y": [3]}, "b": 1, "c": 2}
    assert base == {"a": {"x": 1, "y": [1, 2]}, "b": 1}


def test_the_hash_ignores_comments_and_layout_but_not_content() -> None:
    relaid = "# a comment\n" + BUNDLE.replace(
        "{max_task_micro_usd: 500000}", "\n    max_task_micro_usd: 500000"
    )
    assert parse(relaid).hash == parse(BUNDLE).hash
    # Spelling out a default value changes nothing either.
    explicit = BUNDLE.replace("{max_task_micro_usd: 500000}", "{max_task_micro_usd: 500000, mode: enforce}")
    assert parse(explicit).hash == parse(BUNDLE).hash
    assert parse(BUNDLE.replace("500000", "500001")).hash != parse(BUNDLE).hash


def test_a_wrong_type_names_its_line_and_field() -> None:
    assert only(
        """\
        version: v1
        default:
          budget:
            action: nope
        """
    ) == (4, "$.default.budget.action", "Invalid enum value 'nope'")


def test_an_unknown_field_points_at_its_key() -> None:
    assert only(
        """\
        version: v1
        default:
          residency:
            allowed: [eu]
            alowed_classes: [pii]
        """
    ) == (5, "$.default.residency", "Object contains unknown field `alowed_classes`")


def test_a_bad_value_inside_a_mapping_names_its_key() -> None:
    line, path, message = only(
        """\
        version: v1
        default:
          residency:
            models:
              good: {endpoint: {cloud: aws, region: eu-west-1}}
              bad:
                fallbacks:
                  - {cloud: aws, region: eu-west-1}
                  - {cloud: oracle}
        """
    )
    assert (line, path) == (9, "$.default.residency.models.bad.fallbacks[1].cloud")
    assert "oracle" in message


def test_a_bad_tenant_override_names_the_tenant_and_line() -> None:
    assert only(
        """\
        version: v1
        tenants:
          acme:
            budget: {max_task_micro_usd: 5}
          globex:
            budget:
              max_task_micro_usd: -5
        """
    ) == (7, "$.tenants.globex.budget.max_task_micro_usd", "Expected `int` >= 0")


def test_a_bad_tenant_name_is_found() -> None:
    line, path, message = only("version: v1\ntenants:\n  acme: {}\n  Not A Name: {}\n")
    assert (line, path) == (4, "$.tenants") and "'Not A Name'" in message


def test_missing_version_syntax_errors_and_empty_files() -> None:
    assert only("default: {}\n") == (1, "$", "Object missing required field `version`")
    line, _, message = only("version: v1\ndefault: {budget: [1}\n")
    assert line == 2 and message.startswith("invalid YAML")
    assert only("")[0:2] == (1, "$")


def test_mistakes_types_cannot_catch_are_reported_together() -> None:
    found = problems(
        """\
        version: v1
        default:
          residency:
            workers:
              planner: {cloud: aws, region: eu-west-9}
            default_models: {planner: claude}
        tenants:
          acme:
            residency:
              stores:
                artifacts: {cloud: azure, region: westeuropa}
        """
    )
    assert [(p.line, p.path) for p in found] == [
        (5, "$.default.residency.workers.planner.region"),
        (6, "$.default.residency.default_models.planner"),
        (11, "$.tenants.acme.residency.stores.artifacts.region"),
    ]


def test_a_tenants_override_replaces_its_entry_and_renames_the_version() -> None:
    base = parse(BUNDLE)
    assert base.file is not None
    updated = parse(with_tenant(base.file, "acme", "budget: {max_task_micro_usd: 7}\n"))
    assert updated.policy("acme").budget.max_task_micro_usd == 7
    assert updated.policy("acme").residency.allowed == []  # the old override is gone, not merged
    # Globex's own settings are untouched; only the pins it knows of other tenants (acme's) changed.
    assert own(updated.policy("globex")) == own(base.policy("globex"))
    assert updated.policy("globex").residency.peers != base.policy("globex").residency.peers
    assert re.fullmatch(r"2025-06-01\+acme\.[0-9a-f]{8}", updated.version)
    with pytest.raises(BundleError) as caught:
        with_tenant(base.file, "acme", "budget:\n  max_task_micro_usd: x\n")
    assert (caught.value.problems[0].line, caught.value.problems[0].path) == (
        2,
        "$.budget.max_task_micro_usd",
    )


def test_the_readme_example_is_a_valid_bundle_that_means_what_it_says() -> None:
    readme = (Path(__file__).parents[3] / "README.md").read_text()
    section = readme.split("\n## Policy bundles\n", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    bundle = parse(example)
    acme, globex, initech = (bundle.policy(t) for t in ("acme", "globex", "initech"))
    assert (acme.residency.allowed, acme.credentials.action) == (["eu"], "redact")
    assert acme.residency.workers == bundle.default.residency.workers
    assert (globex.budget.action, globex.budget.max_task_micro_usd) == ("approve", 10_000_000)
    assert initech.commands.mode == "audit" and initech.commands.approve_sudo
    # acme's data may not reach a US endpoint, and a global one needs a human; globex pins only PII.
    for tenant, model, classes, verdict in (
        ("acme", None, [], "allow"),
        ("acme", "gpt-4o-us", [], "deny"),
        ("acme", "o3", [], "approve"),
        ("globex", "gpt-4o-us", [], "allow"),
        ("globex", "gpt-4o-us", ["pii"], "deny"),
    ):
        req = TaskRequest(tenant=tenant, role="planner", prompt="Plan it", model=model, data_classes=classes)
        assert evaluate(req, 100, bundle).decision.verdict == verdict, (tenant, model, classes)


def test_a_key_written_twice_is_refused_at_any_depth_with_both_lines() -> None:
    found = problems(
        """\
        version: v1
        default:
          residency:
            models:
              m:
                fallbacks:
                  - {cloud: aws, region: eu-west-1, region: us-east-1}
          budget: {action: deny}
          budget: {action: audit}
        version: v2
        """
    )
    assert [(p.line, p.path) for p in found] == [
        (7, "$.default.residency.models.m.fallbacks[0].region"),
        (9, "$.default.budget"),
        (10, "$.version"),
    ]
    assert found[1].message.startswith("duplicate key (first at line 8)")
    base = parse(BUNDLE)
    assert base.file is not None
    with pytest.raises(BundleError, match="duplicate key"):
        with_tenant(base.file, "acme", "budget: {action: deny}\nbudget: {action: audit}\n")


def test_the_residency_mistakes_are_found_with_their_lines() -> None:
    found = problems(
        """\
        version: v1
        default:
          residency:
            allowed: [de, Germany]
            workers:
              planner: {region: ap-southeast-3}
              coder: {jurisdiction: eu}
            stores:
              s3: {cloud: alibaba, region: eu-west-1}
            models:
              m: {endpoint: {geography: eu}, fallbacks: [{geography: mars}]}
        """
    )
    assert [(p.line, p.path) for p in found] == [
        (4, "$.default.residency.allowed[1]"),
        (6, "$.default.residency.workers.planner.region"),
        (11, "$.default.residency.models.m.fallbacks[0].geography"),
    ]


def test_the_pins_of_other_tenants_are_filled_in_by_the_bundle_and_never_written() -> None:
    bundle = parse(BUNDLE)
    peers = bundle.policy("globex").residency.peers
    assert peers is not None and peers.pin_of("acme").allowed == ["eu"] and peers.pin_of("x").allowed == []
    assert bundle.policy("anyone").residency.peers == peers
    line, path, message = only(
        """\
        version: v1
        tenants:
          acme:
            residency:
              peers: {default: {allowed: [us]}}
        """
    )
    assert (line, path) == (5, "$.tenants.acme.residency.peers") and "does not write it" in message


@pytest.mark.parametrize(
    "text",
    ["[" * 5000 + "]" * 5000, "version: x\ndefault: " + "{a: " * 5000 + "1" + "}" * 5000],
    ids=["sequences", "mappings"],
)
def test_a_bundle_or_override_nested_past_the_recursion_limit_is_a_bundle_error(text: str) -> None:
    # Found by Schemathesis through the API (a 500); `maestro policy push` and `check` crashed on it too.
    with pytest.raises(BundleError) as raised:
        parse(text)
    assert [(p.path, p.message) for p in raised.value.problems] == [("$", TOO_DEEP)]
    with pytest.raises(BundleError) as raised:
        with_tenant(load_default().file, "acme", text)
    assert [(p.path, p.message) for p in raised.value.problems] == [("$", TOO_DEEP)]
