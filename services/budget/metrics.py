"""The budget's metrics, on the service's registry: per-tenant gauges and what the ledgers did."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from services.budget.entry import effective_limit
from services.budget.ledger import Ledger


class _LedgerGauges(Collector):
    """Per-tenant limit, spent, held and remaining, read from the last ledger seen when scraped."""

    def __init__(self, seen: dict[str, Ledger]) -> None:
        self._seen = seen

    def collect(self) -> Iterator[Metric]:
        what = {
            "limit": "Limit (with what was carried over)",
            "spent": "Money spent",
            "held": "Money held by open reservations",
            "remaining": "Money left for new reservations",
        }
        families = {
            name: GaugeMetricFamily(
                f"maestro_budget_{name}_micro_usd",
                f"{text} in the tenant's current window, as this replica last saw it",
                labels=["tenant"],
            )
            for name, text in what.items()
        }
        for tenant, ledger in list(self._seen.items()):
            families["limit"].add_metric(
                [tenant], effective_limit(ledger.limit_micro_usd, ledger.carried_micro_usd)
            )
            families["spent"].add_metric([tenant], ledger.spent_micro_usd)
            families["held"].add_metric([tenant], ledger.held_micro_usd)
            families["remaining"].add_metric([tenant], ledger.remaining_micro_usd)
        yield from families.values()


@dataclass(frozen=True)
class BudgetMetrics:
    """Per-tenant limit, spent, held and remaining as last seen; reservations, backpressure, expiries, writes,
    conflicts, ledgers started afresh."""

    seen: dict[str, Ledger]
    """The last ledger seen per tenant: the gauges are read from it when scraped, not set on every write."""
    reservations: Counter
    backpressure: Counter
    expirations: Counter
    events: Counter
    cas_conflicts: Counter
    writes: Counter
    recreated: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> BudgetMetrics:
        """Register the budget's metrics on `registry`."""
        seen: dict[str, Ledger] = {}
        registry.register(_LedgerGauges(seen))
        return cls(
            seen=seen,
            reservations=Counter(
                "maestro_budget_reservations_total",
                "Reservations answered, by tenant and outcome (granted, refused)",
                ["tenant", "outcome"],
                registry=registry,
            ),
            backpressure=Counter(
                "maestro_budget_backpressure_total",
                "Reservations answered 429 (retry later) because the tenant's ledger holds the most open "
                "reservations it can, though money may be left",
                ["tenant"],
                registry=registry,
            ),
            expirations=Counter(
                "maestro_budget_expirations_total",
                "Holds released because their ttl passed without a commit or release",
                ["tenant"],
                registry=registry,
            ),
            events=Counter(
                "maestro_budget_events_total",
                "Budget events published, by kind (hold_expired, threshold, overage, window_rolled, "
                "late_commit)",
                ["kind"],
                registry=registry,
            ),
            cas_conflicts=Counter(
                "maestro_budget_cas_conflicts_total",
                "Ledger writes refused because another writer changed the entry first",
                registry=registry,
            ),
            writes=Counter(
                "maestro_budget_ledger_writes_total",
                "Ledger writes that landed (one per group-committed batch of operations)",
                registry=registry,
            ),
            recreated=Counter(
                "maestro_budget_ledgers_recreated_total",
                "Ledgers started afresh because their entry had been deleted or purged from the bucket",
                ["tenant"],
                registry=registry,
            ),
        )

    def observe(self, ledger: Ledger) -> None:
        """Remember a ledger just read or written, for the tenant's gauges (a dict store: writes are hot)."""
        self.seen[ledger.tenant] = ledger
