"""Residency by country: a region lies in one country and in that country's blocs; pins hold for
countries, blocs, data zones and inference profiles; tasks say whose data they carry."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from maestro.policy.bundle import parse
from maestro.policy.engine import evaluate
from maestro.policy.policies.residency import (
    Endpoint,
    Location,
    ModelRoute,
    Peers,
    Pin,
    ResidencyPolicy,
    check,
    locate,
    locate_endpoint,
    problems,
)
from proto.v1 import TaskRequest, regions


def where(cloud: str, region: str) -> Location:
    return Location(cloud=cloud, region=region)  # type: ignore[arg-type]


def policy(allowed: list[str], at: Location, model: Endpoint | None = None, **more: Any) -> ResidencyPolicy:
    endpoint = model or Endpoint(cloud=at.cloud, region=at.region)
    return ResidencyPolicy(
        allowed=allowed,
        workers={"planner": at},
        models={"m": ModelRoute(endpoint=endpoint)},
        default_models={"planner": "m"},
        stores={"artifacts": at},
        **more,
    )


def request(**kwargs: Any) -> TaskRequest:
    return TaskRequest(id="t1", tenant="acme", role="planner", prompt="p", **kwargs)


def rules(req: TaskRequest, pol: ResidencyPolicy) -> set[str]:
    return {f.violation.rule_id for f in check(req, pol)}


@pytest.mark.parametrize(
    ("cloud", "region", "country", "blocs"),
    [
        ("aws", "eu-central-1", "de", {"eu", "eea"}),
        ("gcp", "europe-west4", "nl", {"eu", "eea"}),
        ("azure", "westeurope", "nl", {"eu", "eea"}),
        ("azure", "uksouth", "gb", set()),
        ("azure", "norwayeast", "no", {"eea"}),
        ("aws", "ap-southeast-2", "au", {"apac"}),
        ("oci", "eu-frankfurt-1", "de", {"eu", "eea"}),
        ("alibaba", "eu-west-1", "gb", set()),
    ],
)
def test_a_region_lies_in_its_country_and_in_that_countrys_blocs(
    cloud: str, region: str, country: str, blocs: set[str]
) -> None:
    assert regions.country_of_region(cloud, region) == country
    assert regions.blocs_of(country) == blocs


def test_every_region_of_every_cloud_maps_to_a_country() -> None:
    for cloud, table in regions.REGIONS.items():
        assert table, cloud
        assert set(table.values()) <= regions.COUNTRIES, cloud
    assert {"aws", "gcp", "azure", "oci", "alibaba"} <= set(regions.REGIONS)
    assert regions.canonical("UK") == "gb" and regions.canonical("EU") == "eu"


@pytest.mark.parametrize(
    ("pin", "cloud", "region", "inside"),
    [
        ("de", "aws", "eu-central-1", True),
        ("de", "gcp", "europe-west3", True),
        ("de", "azure", "germanywestcentral", True),
        ("de", "aws", "eu-west-1", False),
        ("nl", "azure", "westeurope", True),
        ("nl", "gcp", "europe-west4", True),
        ("eu", "aws", "eu-central-1", True),
        ("eu", "aws", "eu-west-2", False),
        ("eu", "aws", "eu-central-2", False),
        ("eea", "azure", "norwayeast", True),
        ("eu", "azure", "norwayeast", False),
        ("uk", "azure", "uksouth", True),
        ("gb", "gcp", "europe-west2", True),
        ("uk", "aws", "eu-west-1", False),
    ],
)
def test_a_country_pin_is_met_by_a_region_in_that_country_and_a_bloc_pin_by_one_in_a_member(
    pin: str, cloud: str, region: str, inside: bool
) -> None:
    outside = rules(request(), policy([pin], where(cloud, region)))
    assert (not outside) is inside, outside


def test_a_data_zone_spanning_a_bloc_meets_the_bloc_but_not_one_country_in_it() -> None:
    at = where("aws", "eu-central-1")
    zone = Endpoint(provider="azure-openai", geography="eu")
    assert rules(request(), policy(["eu"], at, zone)) == set()
    assert rules(request(), policy(["eea"], at, zone)) == set()
    assert rules(request(), policy(["de"], at, zone)) == {"residency.model-outside"}
    vertex_eu = Endpoint(provider="vertex", cloud="gcp", region="eu")
    assert rules(request(), policy(["eu"], at, vertex_eu)) == set()
    assert rules(request(), policy(["de"], at, vertex_eu)) == {"residency.model-outside"}


@pytest.mark.parametrize(
    ("profile", "pin", "rule"),
    [
        ("eu.anthropic.claude-sonnet-4-5-v1:0", "eu", None),
        ("eu.anthropic.claude-sonnet-4-5-v1:0", "de", "residency.model-outside"),
        ("us.anthropic.claude-sonnet-4-5-v1:0", "us", None),
        ("us-gov.anthropic.claude-3-5-sonnet-v1:0", "us", None),
        ("jp.anthropic.claude-sonnet-4-5-v1:0", "jp", None),
        ("au.anthropic.claude-sonnet-4-5-v1:0", "au", None),
        ("apac.anthropic.claude-sonnet-4-v1:0", "apac", "residency.model-outside"),  # may route to the UAE
        ("global.anthropic.claude-sonnet-4-5-v1:0", "eu", "residency.unknown-location"),
    ],
)
def test_inference_profiles_route_inside_their_geography_and_global_is_unknown(
    profile: str, pin: str, rule: str | None
) -> None:
    home = {"eu": "eu-central-1", "de": "eu-central-1", "us": "us-east-1", "jp": "ap-northeast-1"}
    at = where("aws", home.get(pin, "ap-southeast-2"))
    found = rules(request(), policy([pin], at, Endpoint(provider="bedrock", inference_profile=profile)))
    assert found == ({rule} if rule else set())


def test_an_on_premises_site_is_where_its_declared_jurisdiction_is() -> None:
    site = Location(jurisdiction="de")
    assert locate(site) is not None and locate(site).countries == {"de"}  # type: ignore[union-attr]
    assert rules(request(), policy(["eu"], site, Endpoint(geography="de"))) == set()
    assert rules(request(), policy(["fr"], site, Endpoint(geography="fr"))) == {
        "residency.worker-outside",
        "residency.store-outside",
    }
    assert locate_endpoint(Endpoint(geography="uk")) is not None


def test_a_task_without_tenant_data_is_held_to_no_pin() -> None:
    us = policy(["eu"], where("aws", "us-east-1"))
    assert rules(request(), us) == {
        "residency.worker-outside",
        "residency.model-outside",
        "residency.store-outside",
    }
    assert rules(request(tenant_data=False), us) == set()
    assert rules(request(tenant_data=False), policy(["eu"], Location())) == set()


def test_a_task_without_tenant_data_cannot_also_say_what_data_it_carries() -> None:
    for contradiction in ({"data_region": "eu"}, {"data_classes": ["pii"]}, {"data_tenants": ["globex"]}):
        with pytest.raises(ValueError, match="tenant_data is false"):
            request(tenant_data=False, **contradiction)
    body = {"tenant": "acme", "role": "planner", "prompt": "p", "tenant_data": False, "data_tenants": ["x"]}
    with pytest.raises(msgspec.ValidationError, match="tenant_data is false"):
        msgspec.convert(body, TaskRequest)


def test_every_tenant_whose_data_the_task_touches_must_have_its_pin_held() -> None:
    peers = Peers(default=Pin(), tenants={"globex": Pin(["de"]), "initech": Pin(["us"], ["pii"])})
    in_france = policy([], where("aws", "eu-west-3"), peers=peers)
    assert rules(request(), in_france) == set()
    assert rules(request(data_tenants=["globex"]), in_france) == {
        "residency.worker-outside",
        "residency.model-outside",
        "residency.store-outside",
    }
    # A pin on some data classes holds only when the task carries them; an unlisted tenant has the default.
    assert rules(request(data_tenants=["initech"]), in_france) == set()
    assert rules(request(data_tenants=["initech"], data_classes=["pii"]), in_france) != set()
    assert rules(request(data_tenants=["hooli"]), in_france) == set()
    in_germany = policy([], where("aws", "eu-central-1"), peers=peers)
    assert rules(request(data_tenants=["globex"]), in_germany) == set()


def test_a_touched_tenants_pin_that_cannot_be_read_needs_approval() -> None:
    unaware = policy([], where("aws", "eu-central-1"))
    (finding,) = check(request(data_tenants=["globex"]), unaware)
    assert (finding.violation.rule_id, finding.action) == ("residency.unknown-tenant-pin", "approve")


def test_the_engine_holds_a_task_to_the_pins_of_the_tenants_it_touches_by_the_bundle() -> None:
    bundle = parse(
        """\
version: peers-1
default:
  residency:
    workers: {planner: {cloud: aws, region: eu-west-3}}
    models: {m: {endpoint: {cloud: aws, region: eu-west-3}}}
    default_models: {planner: m}
tenants:
  globex:
    residency: {allowed: [de]}
  acme:
    residency: {allowed: [eu]}
"""
    )
    alone = request()
    touching = request(data_tenants=["globex"])
    assert evaluate(alone, 100, bundle).decision.verdict == "allow"
    decision = evaluate(touching, 100, bundle).decision
    assert decision.verdict == "deny"
    assert {v.rule_id for v in decision.violations} == {"residency.worker-outside", "residency.model-outside"}
    assert "tenant globex" in decision.violations[0].message


@pytest.mark.parametrize(
    ("written", "path", "said"),
    [
        (Location(region="eu-west-1"), "workers.planner.region", "several clouds (alibaba: gb, aws: ie)"),
        (Location(region="westeurope"), None, None),
        (Location(region="nowhere-1"), "workers.planner.region", "no cloud has a region"),
        (Location(jurisdiction="europe"), "workers.planner.jurisdiction", "neither an ISO 3166-1"),
    ],
)
def test_a_region_without_its_cloud_must_name_one_place(
    written: Location, path: str | None, said: str | None
) -> None:
    found = dict(problems(ResidencyPolicy(workers={"planner": written})))
    if path is None:
        assert found == {}
    else:
        assert said is not None and said in found[path]


def test_geographies_and_pins_must_be_known_jurisdictions() -> None:
    bad = ResidencyPolicy(
        allowed=["eu", "Europe"],
        models={"m": ModelRoute(endpoint=Endpoint(geography="EUR"), fallbacks=[Endpoint(geography="us")])},
    )
    found = dict(problems(bad))
    assert set(found) == {"allowed[1]", "models.m.endpoint.geography"}


def test_a_global_location_is_valid_in_a_bundle_but_places_nothing() -> None:
    vertex_global = Endpoint(provider="vertex", cloud="gcp", region="global")
    assert locate_endpoint(vertex_global) is None
    assert dict(problems(ResidencyPolicy(models={"m": ModelRoute(endpoint=vertex_global)}))) == {}
    assert rules(request(), policy(["eu"], where("gcp", "europe-west3"), vertex_global)) == {
        "residency.unknown-location"
    }
