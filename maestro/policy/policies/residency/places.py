"""Where a hop runs: a cloud region, a provider's data zone or inference profile, or a declared site.

Every hop resolves to a Place, the set of countries its data may be processed in: one country for a
region or a site, every member for a data zone that spans a bloc. A hop nothing can place (a global
endpoint, a `global.` inference profile, an undeclared worker) resolves to None: unknown.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import msgspec

from proto.v1 import regions

Cloud = Literal["aws", "gcp", "azure", "oci", "alibaba"]

# Bedrock cross-region inference profiles, by id prefix: the countries their destination regions lie in.
# `apac.` can route to me-central-1 (UAE), so it is not inside the `apac` bloc; `global.` routes to any
# commercial region and is unknown. Source: AWS, "Supported Regions and models for inference profiles".
PROFILE_ZONES: dict[str, frozenset[str]] = {
    "eu": regions.EU,
    "us": frozenset({"us"}),
    "us-gov": frozenset({"us"}),
    "jp": frozenset({"jp"}),
    "au": frozenset({"au"}),
    "apac": frozenset({"jp", "kr", "in", "sg", "au", "id", "my", "th", "tw", "ae"}),
}
# Multi-region model locations that keep processing inside a jurisdiction (Vertex AI `eu` and `us`).
MULTI_REGIONS: dict[str, dict[str, str]] = {"gcp": {"eu": "eu", "us": "us"}}
GLOBAL = "global"
"""A location some providers name (Vertex AI's global endpoint): a valid value that places nothing."""


@dataclass(frozen=True)
class Place:
    """Where a hop's data may be processed: a label for messages and every country it may be in."""

    label: str
    countries: frozenset[str]

    def inside(self, allowed: frozenset[str]) -> bool:
        """Whether every country the hop may use lies in `allowed`."""
        return bool(self.countries) and self.countries <= allowed


class Location(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Where something runs: a cloud region, or a declared jurisdiction (an on-premises site)."""

    cloud: Cloud | None = None
    region: str | None = None
    jurisdiction: str | None = None
    """The country or bloc of an on-premises site or a pinned deployment; overrides the region."""


class Endpoint(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A model provider endpoint: regional (cloud + region), zone-pinned, or global (unknown)."""

    provider: str = ""
    cloud: Cloud | None = None
    region: str | None = None
    geography: str | None = None
    """A data zone (Azure OpenAI DataZone `eu`/`us`): a country or bloc the provider keeps processing in."""
    inference_profile: str | None = None
    """A cross-region inference profile id such as `eu.anthropic.claude-...`: its prefix is its zone."""


class ModelRoute(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A model's primary endpoint and the endpoints it falls back to."""

    endpoint: Endpoint = Endpoint()
    fallbacks: list[Endpoint] = []


def of_jurisdiction(jurisdiction: str) -> Place | None:
    """A country or bloc as a Place; None when it names neither."""
    countries = regions.countries_of(jurisdiction)
    name = regions.canonical(jurisdiction)
    return Place(name, countries) if countries is not None and name is not None else None


def of_region(cloud: str | None, region: str) -> Place | None:
    """A cloud region (of any cloud when `cloud` is None and the name is unambiguous) as a Place."""
    if region == GLOBAL:
        return None
    if cloud is not None and region in MULTI_REGIONS.get(cloud, {}):
        return of_jurisdiction(MULTI_REGIONS[cloud][region])
    country = regions.country_of_region(cloud, region)
    return Place(country, frozenset({country})) if country else None


def locate(where: Location) -> Place | None:
    """Where a worker or store keeps data; None when it cannot be told."""
    if where.jurisdiction:
        return of_jurisdiction(where.jurisdiction)
    if where.region:
        return of_region(where.cloud, where.region)
    return None


def locate_endpoint(endpoint: Endpoint) -> Place | None:
    """Where a model endpoint processes data; a global endpoint or profile is None."""
    if endpoint.geography:
        return of_jurisdiction(endpoint.geography)
    if endpoint.inference_profile:
        prefix = endpoint.inference_profile.split(".", 1)[0].lower()
        zone = PROFILE_ZONES.get(prefix)
        return Place(f"{prefix} profile zone", zone) if zone else None
    if endpoint.region:
        return of_region(endpoint.cloud, endpoint.region)
    return None


def describe(cloud: str | None, region: str | None, extra: str | None = None) -> str:
    """A hop's location for messages: `aws:eu-west-1`, `eu`, or `global`."""
    if region:
        return f"{cloud}:{region}" if cloud else region
    return extra or "unknown"


def describe_endpoint(endpoint: Endpoint) -> str:
    """An endpoint for messages: its provider and profile, zone or region."""
    provider = f"{endpoint.provider} " if endpoint.provider else ""
    if endpoint.inference_profile:
        return f"{provider}inference profile {endpoint.inference_profile}"
    if endpoint.geography:
        return f"{provider}{endpoint.geography} data zone"
    return provider + describe(endpoint.cloud, endpoint.region, "global")


def region_problem(cloud: str | None, region: str) -> str | None:
    """Why a region written in a bundle is a mistake, or None (it resolves to one country, or is `global`)."""
    if region == GLOBAL:
        return None
    if cloud is not None and region in MULTI_REGIONS.get(cloud, {}):
        return None
    found = regions.region_countries(cloud, region)
    if not found:
        return f"unknown {cloud} region {region!r}" if cloud else f"no cloud has a region {region!r}"
    if len(set(found.values())) > 1:
        where = ", ".join(f"{c}: {country}" for c, country in sorted(found.items()))
        return f"region {region!r} is in several clouds ({where}); name its cloud"
    return None


def jurisdiction_problem(value: str) -> str | None:
    """Why a jurisdiction written in a bundle names none, or None when it is a country or bloc."""
    if regions.canonical(value) is not None:
        return None
    blocs = ", ".join(sorted(regions.BLOCS))
    return f"{value!r} is neither an ISO 3166-1 alpha-2 country nor a bloc ({blocs})"
