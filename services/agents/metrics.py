"""The agents' own metrics, in one container on the service's registry."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram

_TASK_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900)


@dataclass(frozen=True)
class AgentMetrics:
    """Tasks finished by role and outcome (`stopped`: cancelled or timed out mid-work), and their time."""

    tasks: Counter
    task_seconds: Histogram

    @classmethod
    def create(cls, registry: CollectorRegistry) -> AgentMetrics:
        """Register the agents' metrics on `registry`."""
        return cls(
            tasks=Counter(
                "maestro_agent_tasks_total",
                "Tasks an agent handled, by role and outcome (succeeded, failed, stopped, retry)",
                ["role", "outcome"],
                registry=registry,
            ),
            task_seconds=Histogram(
                "maestro_agent_task_seconds",
                "Time from pulling a task to storing its outcome",
                ["role"],
                buckets=_TASK_BUCKETS,
                registry=registry,
            ),
        )
