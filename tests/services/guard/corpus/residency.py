"""Residency cases, generated from the region tables (proto/v1/regions.py): every region of every cloud.

Each case carries its own bundle: the tenant `corpus` (or a tenant whose data the task touches) pinned to
a country or a bloc, and where the worker, the model's endpoints and the artifact store run. Positives
put one hop outside the pin (a region in another country, a bloc pin with a hop outside it, a global
endpoint, an inference profile wider than the pin); every positive kind has hard negatives (the hop
inside, a country inside the pinned bloc, a data zone that matches, a task without tenant data, a pin on
data classes the task does not carry). Deterministic: the same tables give the same cases.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from typing import Any

import msgspec

from maestro.policy.bundle import Bundle, parse
from proto.v1 import regions
from tests.services.guard.corpus.case import Case, request

SOURCE = "proto/v1/regions.py (the clouds' region lists); AWS Bedrock inference profiles; Azure data zones"
Place = dict[str, Any]
"""A Location or Endpoint as a bundle writes it."""

ALL_REGIONS: list[tuple[str, str, str]] = [
    (cloud, region, country)
    for cloud, table in regions.REGIONS.items()
    for region, country in sorted(table.items())
]


@cache
def _parsed(text: str) -> Bundle:
    return parse(text)


def bundle(
    worker: Place, model: Place, store: Place | None = None, fallbacks: tuple[Place, ...] = (), **tenants: Any
) -> Bundle:
    """A bundle whose default places every hop, with a residency override per tenant."""
    residency = {
        "workers": {"implementer": worker},
        "models": {"m": {"endpoint": model, "fallbacks": list(fallbacks)}},
        "default_models": {"implementer": "m"},
        "stores": {"artifacts": store or worker},
    }
    body = {
        "version": "corpus-residency",
        "default": {"residency": residency},
        "tenants": {name: {"residency": pin} for name, pin in tenants.items()},
    }
    return _parsed(msgspec.yaml.encode(body).decode())


def at(cloud: str, region: str) -> Place:
    return {"cloud": cloud, "region": region}


def elsewhere(cloud: str, country: str, skip: int = 0) -> tuple[str, str]:
    """A region of the same cloud in another country (the `skip`-th such, wrapping), and its country."""
    others = [(r, c) for cl, r, c in ALL_REGIONS if cl == cloud and c != country]
    return others[skip % len(others)]


def _by_region() -> Iterator[tuple[str, bool, Bundle, dict[str, Any]]]:
    """(kind, positive, bundle, request fields) for every region of every cloud."""
    for n, (cloud, region, country) in enumerate(ALL_REGIONS):
        home = at(cloud, region)
        other_region, _ = elsewhere(cloud, country, n)
        away = at(cloud, other_region)
        pin = {"allowed": [country]}
        yield "positive:worker-in-another-country", True, bundle(away, home, corpus=pin), {}
        yield "negative:every-hop-in-the-pinned-country", False, bundle(home, home, corpus=pin), {}
        if n % 2 == 0:
            yield (
                "positive:fallback-in-another-country",
                True,
                bundle(home, home, fallbacks=(away,), corpus=pin),
                {},
            )
        else:
            yield "positive:store-in-another-country", True, bundle(home, home, away, corpus=pin), {}
        blocs = sorted(regions.blocs_of(country))
        if blocs:
            bloc_pin = {"allowed": [blocs[n % len(blocs)]]}
            yield "negative:country-inside-the-pinned-bloc", False, bundle(home, home, corpus=bloc_pin), {}
        else:
            eu_home = at("azure", "germanywestcentral")
            yield (
                "positive:bloc-pin-with-a-hop-outside",
                True,
                bundle(eu_home, eu_home, home, corpus={"allowed": ["eu"]}),
                {},
            )
        if n % 3 == 0:
            yield "negative:no-tenant-data", False, bundle(away, away, corpus=pin), {"tenant_data": False}
        elif n % 3 == 1:
            classes = {"allowed": [country], "data_classes": ["pii"]}
            yield (
                "negative:data-class-not-covered",
                False,
                bundle(away, away, corpus=classes),
                {"data_classes": ["telemetry"]},
            )
            yield (
                "positive:data-class-covered",
                True,
                bundle(away, home, corpus=classes),
                {"data_classes": ["pii"]},
            )
        else:
            owner = {"allowed": [country]}
            yield (
                "positive:touched-tenant-pin-broken",
                True,
                bundle(home, away, owner=owner),
                {"data_tenants": ["owner"]},
            )
            yield (
                "negative:touched-tenant-pin-held",
                False,
                bundle(home, home, owner=owner),
                {"data_tenants": ["owner"]},
            )


ZONES: list[tuple[str, bool, Place, str]] = [
    # (kind, positive, model endpoint, pin); workers and stores sit inside the pin.
    ("negative:azure-data-zone-eu", False, {"provider": "azure-openai", "geography": "eu"}, "eu"),
    ("negative:azure-data-zone-eu-in-eea", False, {"provider": "azure-openai", "geography": "eu"}, "eea"),
    (
        "positive:azure-data-zone-eu-for-a-country",
        True,
        {"provider": "azure-openai", "geography": "eu"},
        "de",
    ),
    ("negative:azure-data-zone-us", False, {"provider": "azure-openai", "geography": "us"}, "us"),
    ("positive:azure-data-zone-us-for-eu", True, {"provider": "azure-openai", "geography": "us"}, "eu"),
    ("negative:vertex-multi-region-eu", False, {"provider": "vertex", "cloud": "gcp", "region": "eu"}, "eu"),
    (
        "positive:vertex-multi-region-eu-for-a-country",
        True,
        {"provider": "vertex", "cloud": "gcp", "region": "eu"},
        "fr",
    ),
    ("negative:vertex-multi-region-us", False, {"provider": "vertex", "cloud": "gcp", "region": "us"}, "us"),
    ("positive:global-endpoint", True, {"provider": "openai"}, "us"),
    ("positive:global-endpoint", True, {"provider": "anthropic"}, "eu"),
    ("positive:vertex-global", True, {"provider": "vertex", "cloud": "gcp", "region": "global"}, "eu"),
]
PROFILES: list[tuple[str, str, bool]] = [
    # (profile prefix, pin, positive)
    ("eu", "eu", False), ("eu", "eea", False), ("eu", "de", True), ("eu", "fr", True), ("eu", "us", True),
    ("us", "us", False), ("us", "eu", True), ("us-gov", "us", False), ("us-gov", "ca", True),
    ("jp", "jp", False), ("jp", "apac", False), ("jp", "kr", True), ("au", "au", False),
    ("au", "apac", False), ("au", "nz", True), ("apac", "apac", True), ("apac", "jp", True),
    ("global", "eu", True), ("global", "us", True), ("global", "jp", True),
]  # fmt: skip
HOME: dict[str, Place] = {
    "eu": at("aws", "eu-central-1"), "eea": at("aws", "eu-north-1"), "de": at("aws", "eu-central-1"),
    "fr": at("gcp", "europe-west9"), "us": at("aws", "us-east-1"), "ca": at("aws", "ca-central-1"),
    "jp": at("aws", "ap-northeast-1"), "kr": at("azure", "koreacentral"), "au": at("aws", "ap-southeast-2"),
    "nz": at("aws", "ap-southeast-6"), "apac": at("aws", "ap-southeast-1"),
}  # fmt: skip
MODELS = (
    "anthropic.claude-sonnet-4-5-20250929-v1:0",
    "meta.llama3-3-70b-instruct-v1:0",
    "amazon.nova-pro-v1:0",
)
SITES: list[tuple[str, str, bool]] = [
    # (an on-premises site's declared jurisdiction, pin, positive)
    ("de", "de", False), ("de", "eu", False), ("uk", "gb", False), ("gb", "uk", False), ("ch", "eu", True),
    ("ch", "ch", False), ("no", "eea", False), ("no", "eu", True), ("eu", "eu", False), ("eu", "de", True),
    ("sg", "apac", False), ("us", "eu", True),
]  # fmt: skip


def _by_member() -> Iterator[tuple[str, bool, Bundle, dict[str, Any]]]:
    """An EU data zone against every member country that has a region: it meets `eu`, never the country."""
    homes = {country: at(cloud, region) for cloud, region, country in reversed(ALL_REGIONS)}
    zone = {"provider": "azure-openai", "geography": "eu"}
    for country in sorted(regions.EU & set(homes)):
        home = homes[country]
        yield (
            "positive:eu-data-zone-for-a-member-country",
            True,
            bundle(home, zone, corpus={"allowed": [country]}),
            {},
        )
        yield "negative:eu-data-zone-for-eu", False, bundle(home, zone, corpus={"allowed": ["eu"]}), {}


def _by_zone() -> Iterator[tuple[str, bool, Bundle, dict[str, Any]]]:
    for kind, positive, endpoint, pin in ZONES:
        home = HOME[pin]
        yield kind, positive, bundle(home, endpoint, corpus={"allowed": [pin]}), {}
        yield (
            "negative:no-tenant-data",
            False,
            bundle(home, endpoint, corpus={"allowed": [pin]}),
            {"tenant_data": False},
        )
    for n, (prefix, pin, positive) in enumerate(PROFILES):
        profile = {"provider": "bedrock", "inference_profile": f"{prefix}.{MODELS[n % len(MODELS)]}"}
        kind = f"{'positive' if positive else 'negative'}:inference-profile-{prefix}-for-{pin}"
        yield kind, positive, bundle(HOME[pin], profile, corpus={"allowed": [pin]}), {}
        yield kind + "-as-data-region", positive, bundle(HOME[pin], profile), {"data_region": pin}
    for site, pin, positive in SITES:
        place = {"jurisdiction": site}
        kind = f"{'positive' if positive else 'negative'}:on-premises-{site}-for-{pin}"
        yield (
            kind,
            positive,
            bundle(place, {"provider": "local", "geography": site}, corpus={"allowed": [pin]}),
            {},
        )


def _cases() -> list[Case]:
    found: list[Case] = []
    for n, (kind, positive, judged_by, fields) in enumerate((*_by_region(), *_by_member(), *_by_zone())):
        found.append(Case("residency", kind, positive, request("residency", n, **fields), SOURCE, judged_by))
    return found


CASES: list[Case] = _cases()
