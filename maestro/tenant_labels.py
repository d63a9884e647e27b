"""The `tenant` label of a metric, bounded: the first tenants seen keep their name, later ones share `other`.

Prometheus keeps a series per label value, so a label taking every tenant's name grows without bound as
tenants come; a mesh serving more than MAESTRO_METRICS_TENANTS of them names those it saw first (after a
restart, the first it sees again) and counts the rest under one value. A query per tenant is exact for the
named ones; `other` sums the rest.
"""

from __future__ import annotations

OTHER = "other"
"""The label value of every tenant past the first `limit`."""


class TenantLabels:
    """Names the first `limit` distinct tenants it is asked about; every later one is `other`."""

    def __init__(self, limit: int) -> None:
        if limit < 0:
            raise ValueError(f"a tenant label limit is 0 or more, not {limit}")
        self._limit = limit
        self._named: set[str] = set()

    def __call__(self, tenant: str) -> str:
        """The label value for `tenant`: its own name while there is room, else `other`."""
        if tenant in self._named:
            return tenant
        if len(self._named) < self._limit and tenant != OTHER:
            self._named.add(tenant)
            return tenant
        return OTHER
