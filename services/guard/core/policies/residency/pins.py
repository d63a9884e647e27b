"""Which pins a task's data is held to: its tenant's, its own `data_region`, and every tenant it touches.

A pin is a set of jurisdictions; a hop meets it when every country the hop may use lies in one of them
(a `de` hop meets `eu`; an `eu` data zone does not meet `de`). A task is held to every pin that covers
its data at once. A task that carries no tenant data (`tenant_data: false`) is held to none.
"""

from __future__ import annotations

from dataclasses import dataclass

from proto.v1 import TaskRequest, regions
from services.guard.core.policies.residency.config import Pin, ResidencyPolicy


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
