"""A tenant's residency settings as a bundle writes them, and the mistakes types cannot catch."""

from __future__ import annotations

from collections.abc import Iterator

import msgspec

from maestro.policy.policies import Action, Mode
from maestro.policy.policies.residency.places import (
    Endpoint,
    Location,
    ModelRoute,
    jurisdiction_problem,
    region_problem,
)


class Pin(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Where one tenant allows its data, and which of its data classes that covers."""

    allowed: list[str] = []
    data_classes: list[str] = []


class Peers(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Every tenant's pin in the bundle: a task that touches another tenant's data must hold to it."""

    default: Pin = Pin()
    """The pin of a tenant the bundle does not list."""
    tenants: dict[str, Pin] = {}

    def pin_of(self, tenant: str) -> Pin:
        """The pin `tenant`'s data is held to."""
        return self.tenants.get(tenant, self.default)


class ResidencyPolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Which jurisdictions may process a tenant's data, and where every hop of a task runs."""

    mode: Mode = "enforce"
    action: Action = "deny"
    """For a hop outside the allowed jurisdictions."""
    unknown_action: Action = "approve"
    """For a hop whose location cannot be resolved (a global endpoint, an undeclared worker)."""
    allowed: list[str] = []
    """The tenant's allowed jurisdictions (countries or blocs); empty means the tenant pins nothing."""
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
    peers: Peers | None = None
    """Filled by the bundle from every tenant's own settings (never written): the pins `data_tenants` name.
    None (a policy built by hand) leaves another tenant's pin unknown."""

    def pin(self) -> Pin:
        """This tenant's own pin."""
        return Pin(self.allowed, self.data_classes)


def problems(policy: ResidencyPolicy) -> Iterator[tuple[str, str]]:
    """Mistakes a bundle can make that types cannot catch: (path below the policy, message)."""
    for n, value in enumerate(policy.allowed):
        if (problem := jurisdiction_problem(value)) is not None:
            yield f"allowed[{n}]", problem
    for group, places in (("workers", policy.workers), ("stores", policy.stores)):
        for name, where in places.items():
            yield from _location(f"{group}.{name}", where)
    for model, route in policy.models.items():
        for n, endpoint in enumerate((route.endpoint, *route.fallbacks)):
            at = f"models.{model}.endpoint" if n == 0 else f"models.{model}.fallbacks[{n - 1}]"
            yield from _endpoint(at, endpoint)
    for role, model in policy.default_models.items():
        if model not in policy.models:
            yield f"default_models.{role}", f"model {model!r} is not declared under models"


def _location(at: str, where: Location) -> Iterator[tuple[str, str]]:
    if where.jurisdiction:
        if (problem := jurisdiction_problem(where.jurisdiction)) is not None:
            yield f"{at}.jurisdiction", problem
    elif where.region and (problem := region_problem(where.cloud, where.region)) is not None:
        yield f"{at}.region", problem


def _endpoint(at: str, endpoint: Endpoint) -> Iterator[tuple[str, str]]:
    if endpoint.geography:
        if (problem := jurisdiction_problem(endpoint.geography)) is not None:
            yield f"{at}.geography", problem
    elif not endpoint.inference_profile and endpoint.region:
        if (problem := region_problem(endpoint.cloud, endpoint.region)) is not None:
            yield f"{at}.region", problem
