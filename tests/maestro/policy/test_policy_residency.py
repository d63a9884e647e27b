"""Data residency: every hop (worker, model endpoint, fallbacks, stores) must be in an allowed place."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from maestro.policy.policies.residency import (
    Endpoint,
    Location,
    ModelRoute,
    ResidencyPolicy,
    check,
    jurisdiction_of_region,
    locate_endpoint,
    problems,
)
from proto.v1 import TaskRequest, regions

EU_WORKER = Location(cloud="aws", region="eu-west-1")
EU_MODEL = ModelRoute(endpoint=Endpoint(provider="bedrock", cloud="aws", region="eu-central-1"))
EU_STORE = Location(cloud="gcp", region="europe-west4")


def policy(**changes: Any) -> ResidencyPolicy:
    base = ResidencyPolicy(
        allowed=["eu"],
        workers={"planner": EU_WORKER},
        models={"claude": EU_MODEL},
        default_models={"planner": "claude"},
        stores={"artifacts": EU_STORE},
    )
    return msgspec.structs.replace(base, **changes)


def request(**kwargs: Any) -> TaskRequest:
    return TaskRequest(id="t1", tenant="acme", role="planner", prompt="Plan it", **kwargs)


def judged(req: TaskRequest, pol: ResidencyPolicy) -> list[tuple[str, str, str]]:
    return [(f.violation.rule_id, f.violation.location, f.action) for f in check(req, pol)]


@pytest.mark.parametrize(
    ("cloud", "region", "country"),
    [
        ("aws", "us-east-1", "us"),
        ("aws", "eu-west-1", "ie"),
        ("aws", "eu-west-2", "gb"),
        ("aws", "eu-central-1", "de"),
        ("aws", "ca-central-1", "ca"),
        ("aws", "ap-northeast-1", "jp"),
        ("gcp", "europe-west1", "be"),
        ("gcp", "europe-west4", "nl"),
        ("gcp", "us-central1", "us"),
        ("gcp", "europe-west2", "gb"),
        ("azure", "westeurope", "nl"),
        ("azure", "uksouth", "gb"),
        ("azure", "eastus", "us"),
        ("aws", "westeurope", None),
        ("gcp", "mars-north1", None),
    ],
)
def test_cloud_regions_map_to_their_country(cloud: str, region: str, country: str | None) -> None:
    assert jurisdiction_of_region(cloud, region) == country


def test_every_hop_inside_the_allowed_jurisdictions_passes() -> None:
    assert judged(request(), policy()) == []
    assert judged(request(model="claude"), policy(allowed=["eu", "uk"])) == []


def test_a_tenant_with_no_pin_passes_whatever_runs_where() -> None:
    anywhere = policy(
        allowed=[], workers={}, models={}, stores={"s": Location(cloud="aws", region="us-east-1")}
    )
    assert judged(request(model="unknown-model"), anywhere) == []


def test_a_worker_outside_is_denied_naming_the_hop_its_location_and_the_allowed_set() -> None:
    (finding,) = check(request(), policy(workers={"planner": Location(cloud="aws", region="us-east-1")}))
    v = finding.violation
    assert (v.rule_id, v.location, finding.action) == ("residency.worker-outside", "worker:planner", "deny")
    assert "aws:us-east-1" in v.message and "us" in v.message and "allowed: eu" in v.message


def test_a_model_endpoint_outside_is_denied() -> None:
    us_model = ModelRoute(endpoint=Endpoint(provider="openai", cloud="azure", region="eastus"))
    assert judged(request(), policy(models={"claude": us_model})) == [
        ("residency.model-outside", "model:claude", "deny")
    ]


def test_a_fallback_endpoint_outside_is_denied_even_when_the_primary_is_inside() -> None:
    route = ModelRoute(
        endpoint=Endpoint(cloud="aws", region="eu-west-3"),
        fallbacks=[Endpoint(cloud="aws", region="eu-north-1"), Endpoint(cloud="gcp", region="us-east4")],
    )
    assert judged(request(), policy(models={"claude": route})) == [
        ("residency.model-outside", "model:claude:fallback[1]", "deny")
    ]


def test_a_store_outside_is_denied() -> None:
    stores = {"artifacts": EU_STORE, "backups": Location(cloud="azure", region="uksouth")}
    assert judged(request(), policy(stores=stores)) == [("residency.store-outside", "store:backups", "deny")]


def test_an_eu_inference_profile_or_data_zone_counts_as_eu() -> None:
    profile = Endpoint(provider="bedrock", inference_profile="eu.anthropic.claude-sonnet-4-20250514-v1:0")
    zone = Endpoint(provider="azure-openai", geography="eu")
    assert locate_endpoint(profile) is not None and locate_endpoint(zone) is not None
    assert locate_endpoint(profile).countries == locate_endpoint(zone).countries == regions.EU  # type: ignore[union-attr]
    routes = {"claude": ModelRoute(endpoint=profile, fallbacks=[zone])}
    assert judged(request(), policy(models=routes)) == []
    us_profile = Endpoint(provider="bedrock", inference_profile="us.anthropic.claude-sonnet-4")
    assert judged(request(), policy(models={"claude": ModelRoute(endpoint=us_profile)})) == [
        ("residency.model-outside", "model:claude", "deny")
    ]


def test_an_unknown_processing_location_needs_approval() -> None:
    global_endpoint = ModelRoute(endpoint=Endpoint(provider="openai"))
    assert judged(request(), policy(models={"claude": global_endpoint})) == [
        ("residency.unknown-location", "model:claude", "approve")
    ]
    global_profile = ModelRoute(endpoint=Endpoint(provider="bedrock", inference_profile="global.anthropic.x"))
    assert judged(request(), policy(models={"claude": global_profile}))[0][0] == "residency.unknown-location"
    # A model the bundle does not know, a role with no declared workers.
    assert judged(request(model="gpt-x"), policy()) == [
        ("residency.unknown-location", "model:gpt-x", "approve")
    ]
    assert judged(request(), policy(workers={})) == [
        ("residency.unknown-location", "worker:planner", "approve")
    ]


def test_what_an_unknown_location_gets_is_configurable() -> None:
    assert judged(request(model="gpt-x"), policy(unknown_action="deny"))[0][2] == "deny"


def test_the_request_uses_its_roles_default_model_unless_it_names_one() -> None:
    routes = {"claude": EU_MODEL, "gpt": ModelRoute(endpoint=Endpoint(cloud="azure", region="eastus"))}
    assert judged(request(), policy(models=routes)) == []
    assert judged(request(model="gpt"), policy(models=routes))[0][:2] == (
        "residency.model-outside",
        "model:gpt",
    )


def test_a_pin_on_some_data_classes_covers_only_tasks_carrying_them() -> None:
    us_everything = policy(
        data_classes=["pii", "health"],
        workers={"planner": Location(cloud="aws", region="us-east-1")},
    )
    assert judged(request(), us_everything) == []
    assert judged(request(data_classes=["telemetry"]), us_everything) == []
    assert judged(request(data_classes=["pii"]), us_everything)[0][0] == "residency.worker-outside"


def test_a_request_may_pin_its_own_data_by_region_or_jurisdiction() -> None:
    no_tenant_pin = policy(allowed=[])
    assert judged(request(data_region="eu"), no_tenant_pin) == []
    # A region pins to its country: westeurope is the Netherlands, where only the store is.
    assert judged(request(data_region="westeurope"), no_tenant_pin) == [
        ("residency.worker-outside", "worker:planner", "deny"),
        ("residency.model-outside", "model:claude", "deny"),
    ]
    assert judged(request(data_region="europe-west4"), policy(allowed=[], workers={}, models={})) == [
        ("residency.unknown-location", "worker:planner", "approve"),
        ("residency.unknown-location", "model:claude", "approve"),
    ]
    denied = judged(request(data_region="us-east-1"), no_tenant_pin)
    assert {rule for rule, _, _ in denied} == {
        "residency.worker-outside",
        "residency.model-outside",
        "residency.store-outside",
    }
    # A request pin narrows the tenant's set; it cannot widen it.
    assert judged(request(data_region="uk"), policy(allowed=["eu", "uk"]))[0][0] == "residency.worker-outside"
    assert judged(request(data_region="us"), policy())[0][0] == "residency.worker-outside"


def test_bundle_mistakes_are_found() -> None:
    bad = policy(
        workers={"planner": Location(cloud="aws", region="eu-west-9")},
        default_models={"planner": "nope"},
    )
    assert dict(problems(bad)) == {
        "workers.planner.region": "unknown aws region 'eu-west-9'",
        "default_models.planner": "model 'nope' is not declared under models",
    }
    assert list(problems(policy())) == []
