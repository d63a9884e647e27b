"""The orchestrator service: consume every task event, apply it to the task's record in KV, serve the API."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter

from maestro import runtime, topics
from maestro.bus import Bus, Consumer, Delivery
from maestro.errors import Reject, Retry
from maestro.runtime import Service
from proto.v1 import Accepted, TaskEvent
from services.orchestrator import lifecycle
from services.orchestrator.api import routes
from services.orchestrator.lifecycle import Applied, Duplicate, Refused
from services.orchestrator.locks import KeyedLocks
from services.orchestrator.store import Conflict, TaskStore, Versioned

log = logging.getLogger(__name__)

EVENTS: Consumer[TaskEvent] = Consumer(
    stream=topics.STREAM_EVENTS,
    durable=topics.DURABLE_ORCHESTRATOR,
    filter_subject=topics.EVENTS.all,
    type=TaskEvent,  # type: ignore[arg-type]
    origin="orchestrator",
)

# Compare-and-set attempts on one event before handing it back to the bus for a later redelivery.
_CAS_ATTEMPTS = 5


@dataclass(frozen=True)
class OrchestratorMetrics:
    """What the state machine did with each event, and how many tasks entered each state."""

    transitions: Counter
    states: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> OrchestratorMetrics:
        """Register the orchestrator's metrics on `registry`."""
        return cls(
            transitions=Counter(
                "maestro_orchestrator_transitions_total",
                "Task events by what the state machine did with them (applied, refused, duplicate)",
                ["result"],
                registry=registry,
            ),
            states=Counter(
                "maestro_tasks_state_total",
                "Tasks that entered each state",
                ["state"],
                registry=registry,
            ),
        )


@dataclass(frozen=True)
class Orchestrator:
    """Applies task events to task records: one task's events one at a time, in stream order."""

    store: TaskStore
    locks: KeyedLocks
    metrics: OrchestratorMetrics
    max_deliver: int

    async def handle(self, event: TaskEvent, delivery: Delivery) -> None:
        """Fold one event into its task's record.

        Raises Reject when the subject and the event disagree about the task, Retry when the record kept
        changing under us or the event overtook one it depends on (it is then delivered again later).
        """
        # The lock is the first thing awaited, so events of one task take it in the order they arrived.
        async with self.locks.hold(event.task_id):
            tenant, task_id = topics.EVENTS.values(delivery.subject)
            if (tenant, task_id) != (event.tenant, event.task_id):
                raise Reject(f"event for {event.tenant}/{event.task_id} stored on {delivery.subject}")
            for attempt in range(_CAS_ATTEMPTS):
                try:
                    await self._apply(event, delivery, reread=attempt > 0)
                    return
                except Conflict:
                    continue
            raise Retry(0.1, f"task {event.task_id} kept changing; {_CAS_ATTEMPTS} writes lost")

    async def _apply(self, event: TaskEvent, delivery: Delivery, *, reread: bool) -> None:
        seq = delivery.stream_seq
        current, fresh = (None if reread else self.store.cached(event.task_id)), False
        if current is None and (reread or not isinstance(event, Accepted)):
            # Accepted creates the record, so at first it skips the read: the create fails if one exists.
            current, fresh = await self.store.get(event.task_id), True
        result = lifecycle.step(current.record if current else None, event, seq)
        if isinstance(result, Refused) and not fresh:
            # A refusal must rest on the stored record, not on what this process remembers.
            current = await self.store.get(event.task_id)
            result = lifecycle.step(current.record if current else None, event, seq)
        match result:
            case Applied(record=record):
                await self.store.put(record, current.revision if current else None)
                self.metrics.transitions.labels("applied").inc()
                if result.changed_state:
                    self.metrics.states.labels(record.state).inc()
            case Duplicate():
                self.metrics.transitions.labels("duplicate").inc()
            case Refused(reason=reason, early=early):
                self._refused(event, current, reason, early, delivery)

    def _refused(
        self, event: TaskEvent, current: Versioned | None, reason: str, early: bool, delivery: Delivery
    ) -> None:
        context = {"task_id": event.task_id, "tenant": event.tenant}
        if early and delivery.attempt < self.max_deliver:
            log.info("%s; retrying (delivery %d)", reason, delivery.attempt, extra=context)
            raise Retry(min(0.2 * 2 ** (delivery.attempt - 1), 2.0), reason)
        state = current.record.state if current else "absent"
        log.warning("refused %s (task %s): %s", lifecycle.kind(event), state, reason, extra=context)
        self.metrics.transitions.labels("refused").inc()


async def serve(bus: Bus) -> None:
    """Apply every task event to its record until the bus stops."""
    orchestrator = Orchestrator(
        store=TaskStore(bus.js),
        locks=KeyedLocks(),
        metrics=OrchestratorMetrics.create(bus.metrics.registry),
        max_deliver=bus.settings.max_deliver,
    )
    await bus.consume(EVENTS, orchestrator.handle)


SERVICE = Service(name="orchestrator", default_port=8080, serve=serve, routes=routes)


def main() -> None:
    """`python -m services.orchestrator`."""
    runtime.main(SERVICE)
