"""The pins a task's data is held to, the hops of the task, and the findings of hops outside a pin.

A task is held to every pin that covers its data at once: its tenant's, its own `data_region`, and the
pin of every tenant in `data_tenants`; a task that carries no tenant data (`tenant_data: false`) is held
to none. A pin is a set of jurisdictions; a hop meets it when every country the hop may use lies in one
of them (a `de` hop meets `eu`; an `eu` data zone does not meet `de`).

The hops of a task are the worker of its role, its model's endpoint, every fallback endpoint of that
model and every store. A hop outside any pin the task is held to is `<kind>-outside`; a hop that
resolves to no place is `unknown-location`, and so is a touched tenant whose pin cannot be read.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from maestro.policy.policies import Finding
from maestro.policy.policies.residency.config import Pin, ResidencyPolicy
from maestro.policy.policies.residency.places import (
    Place,
    describe,
    describe_endpoint,
    locate,
    locate_endpoint,
)
from proto.v1 import TaskRequest, Violation, regions

POLICY = "residency"


@dataclass(frozen=True)
class Constraint:
    """One pin a task must hold to: whose it is, its jurisdictions, and the countries they cover."""

    whose: str
    jurisdictions: tuple[str, ...]
    countries: frozenset[str]

    @property
    def shown(self) -> str:
        return ", ".join(self.jurisdictions) or "(none)"


def covers(pin: Pin, request: TaskRequest) -> bool:
    """Whether a pin covers this task's data: it pins something, for all classes or one the task carries."""
    return bool(pin.allowed) and (
        not pin.data_classes or bool(set(pin.data_classes) & set(request.data_classes))
    )


def constraint(whose: str, jurisdictions: list[str]) -> Constraint:
    """A pin as a Constraint; a jurisdiction that names nothing allows nothing."""
    names = tuple(sorted({regions.canonical(j) or j.lower() for j in jurisdictions}))
    countries: frozenset[str] = frozenset()
    for name in names:
        countries |= regions.countries_of(name) or frozenset()
    return Constraint(whose, names, countries)


def constraints(request: TaskRequest, policy: ResidencyPolicy) -> tuple[list[Constraint], list[str]]:
    """The pins the task is held to, and the tenants it touches whose pins are unknown (no peers)."""
    if not request.tenant_data:
        return [], []
    held: list[Constraint] = []
    if covers(policy.pin(), request):
        held.append(constraint(f"tenant {request.tenant}", policy.allowed))
    if request.data_region:
        pinned = regions.jurisdiction_of(request.data_region) or request.data_region.lower()
        held.append(constraint(f"data_region {request.data_region}", [pinned]))
    unknown: list[str] = []
    for tenant in sorted(set(request.data_tenants) - {request.tenant}):
        if policy.peers is None:
            unknown.append(tenant)
            continue
        pin = policy.peers.pin_of(tenant)
        if covers(pin, request):
            held.append(constraint(f"tenant {tenant} (data_tenants)", pin.allowed))
    return held, unknown


def model_of(request: TaskRequest, policy: ResidencyPolicy) -> str | None:
    """The model a request will use: its own, else its role's default in the bundle."""
    return request.model or policy.default_models.get(request.role)


def hops(request: TaskRequest, policy: ResidencyPolicy) -> Iterator[tuple[str, str, Place | None]]:
    """Every place the task's data goes: (hop name, where it is, its Place or None)."""
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
            yield hop, describe_endpoint(endpoint), locate_endpoint(endpoint)
    for name, store in sorted(policy.stores.items()):
        yield f"store:{name}", describe(store.cloud, store.region, store.jurisdiction), locate(store)


def check(request: TaskRequest, policy: ResidencyPolicy) -> list[Finding]:
    """A finding for every hop outside a pin the task's data is held to (or unknown)."""
    held, unknown_tenants = constraints(request, policy)
    findings = [_unknown_pin(tenant, policy) for tenant in unknown_tenants]
    if not held:
        return findings
    for hop, where, place in hops(request, policy):
        kind = hop.split(":", 1)[0]
        if place is None:
            findings.append(_unknown(hop, kind, where, held, policy))
            continue
        broken = next((c for c in held if not place.inside(c.countries)), None)
        if broken is not None:
            findings.append(_outside(hop, kind, where, place, broken, policy))
    return findings


def _outside(
    hop: str, kind: str, where: str, place: Place, broken: Constraint, policy: ResidencyPolicy
) -> Finding:
    return Finding(
        Violation(
            policy=POLICY,
            rule_id=f"residency.{kind}-outside",
            severity="high",
            location=hop,
            evidence=f"{where} ({place.label})",
            message=f"{hop} processes data in {place.label} ({where}); allowed: {broken.shown} "
            f"(the pin of {broken.whose})",
            fix=f"route the task to a {kind} in {broken.shown}, or change the residency of {broken.whose}",
        ),
        policy.action,
    )


def _unknown(hop: str, kind: str, where: str, held: list[Constraint], policy: ResidencyPolicy) -> Finding:
    shown = "; ".join(f"{c.shown} ({c.whose})" for c in held)
    return Finding(
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


def _unknown_pin(tenant: str, policy: ResidencyPolicy) -> Finding:
    return Finding(
        Violation(
            policy=POLICY,
            rule_id="residency.unknown-tenant-pin",
            severity="medium",
            location=f"data_tenants:{tenant}",
            message=f"the task touches the data of tenant {tenant}, whose residency pin is not known here",
            fix="judge the task with the bundle that holds every tenant's policy",
        ),
        policy.unknown_action,
    )
