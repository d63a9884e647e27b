"""The budget's metrics, on the service's registry: per-tenant gauges and what the ledgers did."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge

from services.budget.ledger import Ledger


@dataclass(frozen=True)
class BudgetMetrics:
    """Per-tenant limit, spent, held and remaining as last seen; reservations, expiries, writes, conflicts."""

    limit: Gauge
    spent: Gauge
    held: Gauge
    remaining: Gauge
    reservations: Counter
    expirations: Counter
    events: Counter
    cas_conflicts: Counter
    writes: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> BudgetMetrics:
        """Register the budget's metrics on `registry`."""

        def gauge(name: str, what: str) -> Gauge:
            return Gauge(
                f"maestro_budget_{name}_micro_usd",
                f"{what} in the tenant's current window, as this replica last saw it",
                ["tenant"],
                registry=registry,
            )

        return cls(
            limit=gauge("limit", "Limit (with what was carried over)"),
            spent=gauge("spent", "Money spent"),
            held=gauge("held", "Money held by open reservations"),
            remaining=gauge("remaining", "Money left for new reservations"),
            reservations=Counter(
                "maestro_budget_reservations_total",
                "Reservations answered, by tenant and outcome (granted, refused)",
                ["tenant", "outcome"],
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
                "Budget events published, by kind (hold_expired, threshold, overage, window_rolled)",
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
        )

    def observe(self, ledger: Ledger) -> None:
        """Set the tenant's gauges from a ledger just read or written."""
        tenant = ledger.tenant
        self.limit.labels(tenant).set(ledger.limit_micro_usd + ledger.carried_micro_usd)
        self.spent.labels(tenant).set(ledger.spent_micro_usd)
        self.held.labels(tenant).set(ledger.held_micro_usd)
        self.remaining.labels(tenant).set(ledger.remaining_micro_usd)
