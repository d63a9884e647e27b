"""Data residency: every place that processes or stores a tenant's data must lie where the tenant allows.

The hops of a task are the worker of its role, its model's endpoint, every fallback endpoint of that
model and every store. Each hop resolves to a jurisdiction ("eu", "us", "uk", ...) through its cloud
region, an explicit geography (an EU-only deployment or inference profile) or an explicit jurisdiction;
a hop that resolves to nothing (a global endpoint, an undeclared worker) is unknown.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import msgspec

from proto.v1 import TaskRequest, Violation, regions
from proto.v1.regions import jurisdiction_of_region
from services.guard.core.policies import Action, Finding, Mode

POLICY = "residency"

Cloud = Literal["aws", "gcp", "azure"]


# Geography prefixes of cross-region inference profiles and data zones: traffic stays inside them.
# "global." routes anywhere, so it is not here and resolves to unknown.
PROFILE_GEOGRAPHIES: dict[str, str] = {"eu": "eu", "us": "us", "us-gov": "us", "apac": "apac", "ca": "ca"}


class Location(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Where something runs: a cloud region, or an explicit jurisdiction (on premises, a pinned geography)."""

    cloud: Cloud | None = None
    region: str | None = None
    jurisdiction: str | None = None
    """Overrides the region's jurisdiction; "eu" for an EU-only deployment."""


class Endpoint(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A model provider endpoint: regional (cloud + region), geography-pinned, or global (unknown)."""

    provider: str = ""
    cloud: Cloud | None = None
    region: str | None = None
    geography: str | None = None
    """A geography-pinned deployment ("eu" data zone, EU inference profile): counts as that jurisdiction."""
    inference_profile: str | None = None
    """A cross-region inference profile id such as `eu.anthropic.claude-...`: its prefix is its geography."""


class ModelRoute(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A model's primary endpoint and the endpoints it falls back to."""

    endpoint: Endpoint = Endpoint()
    fallbacks: list[Endpoint] = []


class ResidencyPolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Which jurisdictions may process a tenant's data, and where every hop of a task runs."""

    mode: Mode = "enforce"
    action: Action = "deny"
    """For a hop outside the allowed jurisdictions."""
    unknown_action: Action = "approve"
    """For a hop whose location cannot be resolved (a global endpoint, an undeclared worker)."""
    allowed: list[str] = []
    """The tenant's allowed jurisdictions; empty means the tenant pins nothing."""
    data_classes: list[str] = []
    """Data classes the pin covers; empty means all of the tenant's data."""
    workers: dict[str, Location] = {}
    """Role -> where its workers run."""
    models: dict[str, ModelRoute] = {}
    """Model name -> its endpoints."""
    default_models: dict[str, str] = {}
    """Role -> the model a request of that role uses when it names none."""
    stores: dict[str, Location] = {}
    """Store name -> where it keeps data (the artifact store)."""


def locate(where: Location) -> str | None:
    """The jurisdiction of a worker or store location; None when it cannot be told."""
    if where.jurisdiction:
        return where.jurisdiction
    if where.region:
        return jurisdiction_of_region(where.cloud, where.region)
    return None


def locate_endpoint(endpoint: Endpoint) -> str | None:
    """The jurisdiction of a model endpoint; a global endpoint (no region, no geography) is None."""
    if endpoint.geography:
        return endpoint.geography
    if endpoint.inference_profile:
        prefix = endpoint.inference_profile.split(".", 1)[0]
        return PROFILE_GEOGRAPHIES.get(prefix)
    if endpoint.region:
        return jurisdiction_of_region(endpoint.cloud, endpoint.region)
    return None


def describe(cloud: str | None, region: str | None, extra: str | None = None) -> str:
    """A hop's location for messages: `aws:eu-west-1`, `eu`, or `global`."""
    if region:
        return f"{cloud}:{region}" if cloud else region
    return extra or "unknown"


def _pin(request: TaskRequest) -> str | None:
    """The jurisdiction a request pins its data to with `data_region` (a jurisdiction or a region)."""
    if not request.data_region:
        return None
    return regions.jurisdiction_of(request.data_region) or request.data_region.lower()


def allowed_for(request: TaskRequest, policy: ResidencyPolicy) -> frozenset[str] | None:
    """The jurisdictions this task's data may visit; None when nothing pins it."""
    allowed: frozenset[str] | None = None
    covered = not policy.data_classes or bool(set(policy.data_classes) & set(request.data_classes))
    if policy.allowed and covered:
        allowed = frozenset(j.lower() for j in policy.allowed)
    pin = _pin(request)
    if pin is not None:
        allowed = frozenset({pin}) if allowed is None else allowed & {pin}
    return allowed


def model_of(request: TaskRequest, policy: ResidencyPolicy) -> str | None:
    """The model a request will use: its own, else its role's default in the bundle."""
    return request.model or policy.default_models.get(request.role)


def hops(request: TaskRequest, policy: ResidencyPolicy) -> Iterator[tuple[str, str, str | None]]:
    """Every place the task's data goes: (hop name, where it is, its jurisdiction or None)."""
    worker = policy.workers.get(request.role)
    if worker is None:
        yield f"worker:{request.role}", "undeclared", None
    else:
        yield (
            f"worker:{request.role}",
            describe(worker.cloud, worker.region, worker.jurisdiction),
            locate(worker),
        )
    model = model_of(request, policy)
    route = policy.models.get(model) if model else None
    if route is None:
        yield f"model:{model or '(none)'}", "undeclared", None
    else:
        for n, endpoint in enumerate((route.endpoint, *route.fallbacks)):
            hop = f"model:{model}" if n == 0 else f"model:{model}:fallback[{n - 1}]"
            yield hop, _where(endpoint), locate_endpoint(endpoint)
    for name, store in sorted(policy.stores.items()):
        yield f"store:{name}", describe(store.cloud, store.region, store.jurisdiction), locate(store)


def _where(endpoint: Endpoint) -> str:
    provider = f"{endpoint.provider} " if endpoint.provider else ""
    if endpoint.inference_profile:
        return f"{provider}inference profile {endpoint.inference_profile}"
    if endpoint.geography:
        return f"{provider}{endpoint.geography} geography"
    return provider + describe(endpoint.cloud, endpoint.region, "global")


def check(request: TaskRequest, policy: ResidencyPolicy) -> list[Finding]:
    """A finding for every hop outside the allowed jurisdictions (or unknown) for this task's data."""
    allowed = allowed_for(request, policy)
    if allowed is None:
        return []
    shown = ", ".join(sorted(allowed)) or "(none)"
    findings: list[Finding] = []
    for hop, where, jurisdiction in hops(request, policy):
        kind = hop.split(":", 1)[0]
        if jurisdiction is None:
            findings.append(
                Finding(
                    Violation(
                        policy=POLICY,
                        rule_id="residency.unknown-location",
                        severity="medium",
                        location=hop,
                        evidence=where,
                        message=f"{hop} runs at {where}, which resolves to no jurisdiction; allowed: {shown}",
                        fix=f"declare where the {kind} runs in the bundle, or use a regional endpoint",
                    ),
                    policy.unknown_action,
                )
            )
        elif jurisdiction.lower() not in allowed:
            findings.append(
                Finding(
                    Violation(
                        policy=POLICY,
                        rule_id=f"residency.{kind}-outside",
                        severity="high",
                        location=hop,
                        evidence=f"{where} ({jurisdiction})",
                        message=f"{hop} processes data in {jurisdiction} ({where}); allowed: {shown}",
                        fix=f"route the task to a {kind} in {shown}, or change the tenant's residency",
                    ),
                    policy.action,
                )
            )
    return findings


def problems(policy: ResidencyPolicy) -> Iterator[tuple[str, str]]:
    """Mistakes a bundle can make that types cannot catch: (path below the policy, message)."""
    for group, places in (("workers", policy.workers), ("stores", policy.stores)):
        for name, where in places.items():
            if where.region and where.cloud and locate(where) is None:
                yield f"{group}.{name}.region", f"unknown {where.cloud} region {where.region!r}"
    for model, route in policy.models.items():
        for n, endpoint in enumerate((route.endpoint, *route.fallbacks)):
            at = f"models.{model}.endpoint" if n == 0 else f"models.{model}.fallbacks[{n - 1}]"
            if (
                endpoint.region
                and endpoint.cloud
                and jurisdiction_of_region(endpoint.cloud, endpoint.region) is None
            ):
                yield f"{at}.region", f"unknown {endpoint.cloud} region {endpoint.region!r}"
    for role, model in policy.default_models.items():
        if model not in policy.models:
            yield f"default_models.{role}", f"model {model!r} is not declared under models"
