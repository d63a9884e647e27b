"""The metrics every service shares, in one container built on an injected registry."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


@dataclass(frozen=True)
class Metrics:
    """Bus-level counters and latencies: what every consumer and endpoint did with each message."""

    registry: CollectorRegistry
    messages: Counter
    handler_seconds: Histogram
    dead_letters: Counter
    requests: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> Metrics:
        """Register the shared metrics on `registry`."""
        return cls(
            registry=registry,
            messages=Counter(
                "maestro_messages_total",
                "Messages handled by a consumer, by outcome (ack, retry, reject, error, dead_letter)",
                ["consumer", "outcome"],
                registry=registry,
            ),
            handler_seconds=Histogram(
                "maestro_handler_seconds",
                "Time a handler took for one message",
                ["consumer"],
                buckets=_LATENCY_BUCKETS,
                registry=registry,
            ),
            dead_letters=Counter(
                "maestro_dead_letters_total",
                "Messages sent to the DLQ, by origin",
                ["origin"],
                registry=registry,
            ),
            requests=Counter(
                "maestro_requests_total",
                "Request/reply calls served, by endpoint and answer code",
                ["endpoint", "code"],
                registry=registry,
            ),
        )
