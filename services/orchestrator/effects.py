"""Carry out what the lifecycle decided: arm timers, record decisions, release holds, time out approvals.

Every command is safe to carry out again (a crash before the record write or the ack brings the events
back, and the lifecycle derives the same commands): a timer armed again replaces itself, a recorded event
and an approval decision carry a message id the streams deduplicate, and releasing a hold that is gone
changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from maestro import topics
from maestro.bus import Bus
from maestro.errors import RemoteError, Retry
from proto.v1 import Release, TimerFired
from services.orchestrator.lifecycle import ArmTimer, Command, Decide, Record, ReleaseHold

log = logging.getLogger(__name__)


class Effects:
    """The lifecycle's commands, done on a bus."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus

    async def run(self, commands: Iterable[Command]) -> None:
        """Do each command in order; raises Retry when the budget cannot release a hold now."""
        for command in commands:
            await self._one(command)

    async def _one(self, command: Command) -> None:
        match command:
            case ArmTimer(tenant=tenant, task_id=task_id, timer=timer, due=due, attempt=attempt):
                fired = TimerFired(task_id=task_id, tenant=tenant, at=due, timer=timer, attempt=attempt)
                await self.bus.schedule(
                    topics.TIMERS.subject(tenant, task_id, timer),
                    fired,
                    due=due,
                    target=topics.EVENTS.subject(tenant, task_id),
                )
            case Record(event=event, msg_id=msg_id):
                await self.bus.publish(
                    topics.EVENTS.subject(event.tenant, event.task_id), event, msg_id=msg_id
                )
            case ReleaseHold(tenant=tenant, reservation_id=reservation_id):
                await self._release(tenant, reservation_id)
            case Decide(decision=decision):
                await self.bus.publish(
                    topics.APPROVALS.subject(decision.tenant),
                    decision,
                    msg_id=topics.approval_msg_id(decision.task_id, decision.tenant),
                )

    async def _release(self, tenant: str, reservation_id: str) -> None:
        try:
            await self.bus.request(
                topics.BUDGET_RELEASE, Release(tenant=tenant, reservation_id=reservation_id), key=tenant
            )
        except RemoteError as exc:
            if exc.code >= 500:
                raise Retry(1.0, f"budget release of {reservation_id}: {exc}") from None
            # Refused for good (settled or expired already): there is nothing left to give back.
            log.info("hold %s not released: %s", reservation_id, exc, extra={"tenant": tenant})
