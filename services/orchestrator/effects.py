"""Carry out what the lifecycle decided: arm timers, record decisions, release holds, retry, end approvals,
return a human task whose claim lapsed to its queue.

Every command is safe to carry out again (a crash before the record write or the ack brings the events
back, and the lifecycle derives the same commands): a timer armed again replaces itself, a recorded event
and an approval decision carry a message id the streams deduplicate, and releasing a hold that is gone
changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime

from msgspec import structs
from nats.js.errors import NotFoundError

from maestro import codec, topics
from maestro.bus import Bus
from maestro.desk.desk import Desk, DeskError
from maestro.desk.people import PeopleStore
from maestro.errors import RemoteError, Retry
from maestro.lifecycle import (
    ArmTimer,
    Command,
    Decide,
    ExpireLease,
    Notify,
    Record,
    Redispatch,
    ReleaseHold,
    StopWork,
)
from proto.v1 import Failed, Release, Reserve, Retrying, TaskAssignment, TimerFired

log = logging.getLogger(__name__)


class Effects:
    """The lifecycle's commands, done on a bus."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self._desk = Desk(bus, PeopleStore(bus))

    async def run(self, commands: Iterable[Command]) -> None:
        """Do each command in order; raises Retry when the budget cannot release a hold now."""
        for command in commands:
            await self._one(command)

    async def _one(self, command: Command) -> None:
        match command:
            case ArmTimer(tenant=tenant, task_id=task_id, timer=timer, due=due, attempt=attempt):
                fired = TimerFired(task_id=task_id, tenant=tenant, at=due, timer=timer, attempt=attempt)
                await self.bus.streams.schedule(
                    topics.TIMERS.at(tenant, task_id, timer),
                    fired,
                    due=due,
                    target=topics.EVENTS.at(tenant, task_id),
                )
            case Record(event=event, msg_id=msg_id):
                await self.bus.streams.publish(
                    topics.EVENTS.at(event.tenant, event.task_id), event, msg_id=msg_id
                )
            case ReleaseHold(tenant=tenant, reservation_id=reservation_id):
                await self._release(tenant, reservation_id)
            case Decide(decision=decision):
                await self.bus.streams.publish(
                    topics.APPROVALS.at(decision.tenant),
                    decision,
                    msg_id=topics.approval_msg_id(decision.task_id, decision.tenant),
                )
            case Redispatch() as retry:
                await self._redispatch(retry)
            case StopWork(event=event):
                await self.bus.streams.notify(topics.STOP_NOTICES.at(event.tenant, event.task_id), event)
            case Notify(notification=notification, msg_id=msg_id):
                await self.bus.streams.publish(
                    topics.NOTIFICATIONS.at(notification.tenant), notification, msg_id=msg_id
                )
            case ExpireLease(tenant=tenant, task_id=task_id, claim=claim):
                try:
                    await self._desk.expire(tenant, task_id, claim)
                except DeskError as exc:
                    raise Retry(1.0, str(exc)) from None

    async def _redispatch(self, retry: Redispatch) -> None:
        """Hold the attempt's estimate, schedule its assignment, record Retrying; or fail the task."""
        tenant, task_id = retry.tenant, retry.task_id
        reserve = Reserve(
            tenant=tenant,
            task_id=task_id,
            estimate_micro_usd=retry.estimate_micro_usd,
            ttl_s=self.bus.settings.reservation_ttl_s,
            role=retry.role,
            model=retry.model,
            attempt=retry.attempt,
        )
        try:
            reservation = await self.bus.calls.request(topics.BUDGET_RESERVE, reserve, key=tenant)
        except RemoteError as exc:
            if exc.transient:
                raise Retry(1.0, f"budget reserve for attempt {retry.attempt}: {exc}") from None
            return await self._fail(retry, "budget", f"the budget refused attempt {retry.attempt}: {exc}")
        if not reservation.granted:
            why = f"the budget cannot hold attempt {retry.attempt}: {reservation.reason}"
            return await self._fail(retry, "budget", why)
        kept = await self._kept(task_id)
        if kept is None or kept.attempt != retry.attempt - 1:
            await self._release(tenant, reservation.reservation_id)
            why = f"attempt {retry.attempt - 1}'s assignment was not kept for a retry: {retry.error}"
            return await self._fail(retry, "lost", why)
        again = structs.replace(
            kept, attempt=retry.attempt, reservation_id=reservation.reservation_id, queued_seq=0
        )
        await self.bus.streams.schedule(
            topics.REDISPATCH.at(retry.role, task_id),
            again,
            due=retry.due,
            target=topics.TASKS.at(retry.role, tenant),
        )
        retrying = Retrying(
            task_id=task_id,
            tenant=tenant,
            at=datetime.now(UTC),
            attempt=retry.attempt,
            next_at=retry.due,
            error=retry.error,
            reservation_id=reservation.reservation_id,
        )
        await self.bus.streams.publish(
            topics.EVENTS.at(tenant, task_id),
            retrying,
            msg_id=topics.event_msg_id(task_id, f"retry-{retry.attempt}"),
        )

    async def _kept(self, task_id: str) -> TaskAssignment | None:
        """The assignment the failed attempt's worker kept (read from the bucket's leader), or None."""
        try:
            raw = await self.bus.js.get_msg(
                topics.kv_stream(topics.BUCKET_ATTEMPTS),
                subject=topics.kv_subject(topics.BUCKET_ATTEMPTS, task_id),
            )
        except NotFoundError:
            return None
        return codec.decode(TaskAssignment, raw.data) if raw.data else None

    async def _fail(self, retry: Redispatch, failure: str, error: str) -> None:
        failed = Failed(
            task_id=retry.task_id,
            tenant=retry.tenant,
            at=datetime.now(UTC),
            error=error,
            failure=failure,  # type: ignore[arg-type]
            attempt=retry.attempt - 1,
        )
        await self.bus.streams.publish(
            topics.EVENTS.at(retry.tenant, retry.task_id),
            failed,
            msg_id=topics.end_msg_id(retry.task_id),
        )

    async def _release(self, tenant: str, reservation_id: str) -> None:
        await release_hold(self.bus, tenant, reservation_id)


async def release_hold(bus: Bus, tenant: str, reservation_id: str) -> None:
    """Give a hold back; raises Retry when the budget cannot answer now. A hold the budget no longer has
    (settled or expired already) leaves nothing to give back."""
    try:
        await bus.calls.request(
            topics.BUDGET_RELEASE, Release(tenant=tenant, reservation_id=reservation_id), key=tenant
        )
    except RemoteError as exc:
        if exc.code >= 500:
            raise Retry(1.0, f"budget release of {reservation_id}: {exc}") from None
        log.info("hold %s not released: %s", reservation_id, exc, extra={"tenant": tenant})
