"""Stop orders: hear the orchestrator say that a running task must stop (a Cancelled or TimedOut).

One subscription per process hears every stop notice (topics.STOP_NOTICES) and passes each to the order of
the task it names, if this process runs it: a task costs no subscription of its own, and no worker hears
the events of the tasks it runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg

from maestro import codec, topics
from proto.v1 import Cancelled, TaskEvent, TaskRequest, TimedOut, Usage
from proto.v1.tasks import FailureKind
from services.agents.roles import RoleResult

STOPS = (Cancelled, TimedOut)
"""Events that stop a running task (the orchestrator records them): its role is cancelled mid-work."""
STOPPED = "stopped: "
"""How the error of a task stopped mid-work begins."""


def stop_error(stop: Cancelled | TimedOut) -> str:
    """The error a task stopped mid-work fails with: who or what stopped it, and why."""
    match stop:
        case Cancelled(by=by, reason=reason):
            return f"{STOPPED}cancelled by {by or 'someone'}: {reason or 'no reason given'}"
        case TimedOut(timer=timer, reason=reason):
            return f"{STOPPED}timed out ({timer or 'a timer'}): {reason or 'no reason given'}"


def stopped_result(request: TaskRequest, stop: Cancelled | TimedOut) -> RoleResult:
    """How a role stopped mid-work ended: failed (`cancelled` or `timeout`), having used nothing it could
    report (a role reports its usage only when it returns)."""
    usage = Usage(model=request.model or "none")
    failure: FailureKind = "cancelled" if isinstance(stop, Cancelled) else "timeout"
    return RoleResult(ok=False, output="", usage=usage, error=stop_error(stop), failure=failure)


@dataclass
class StopOrder:
    """The first stop heard for one task while it runs; hearing it cancels the role's work."""

    task_id: str
    heard: Cancelled | TimedOut | None = None
    _role: asyncio.Task[RoleResult] | None = field(default=None, init=False, repr=False)

    async def on_message(self, msg: Msg) -> None:
        """The subscription's callback: never raises (nats.py would only log it and carry on)."""
        try:
            event: TaskEvent = codec.decode(TaskEvent, msg.data)  # type: ignore[arg-type]
        except codec.DecodeError:
            return  # not ours to judge: the stored events are what counts
        if self.heard is None and isinstance(event, STOPS) and event.task_id == self.task_id:
            self.heard = event
            if self._role is not None:
                self._role.cancel()

    async def run(self, role: Coroutine[Any, Any, RoleResult]) -> RoleResult | Cancelled | TimedOut:
        """The role's result, or the stop that came before it finished (the role was then cancelled, which
        kills a sandboxed command's whole process group).

        Raises CancelledError when the worker itself is cancelled.
        """
        if self.heard is not None:
            role.close()
            return self.heard
        self._role = asyncio.create_task(role)
        try:
            return await self._role
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if self.heard is None or (current is not None and current.cancelling()):
                raise
            return self.heard
        finally:
            self._role = None


class StopNotices:
    """The stop orders of the tasks this process runs, by task id; one subscription feeds them all."""

    def __init__(self) -> None:
        self._orders: dict[str, StopOrder] = {}

    @classmethod
    async def subscribed(cls, nc: Client) -> StopNotices:
        """Notices listened to on `nc` from now on, for as long as the connection lasts."""
        notices = cls()
        await nc.subscribe(topics.STOP_NOTICES.all, cb=notices.on_message)
        return notices

    async def on_message(self, msg: Msg) -> None:
        """The subscription's callback: never raises (nats.py would only log it and carry on)."""
        order = self._orders.get(msg.subject.rsplit(".", 1)[-1])
        if order is not None:
            await order.on_message(msg)

    @contextmanager
    def order(self, task_id: str) -> Iterator[StopOrder]:
        """A StopOrder for the task, heard for the block's length."""
        order = self._orders[task_id] = StopOrder(task_id)
        try:
            yield order
        finally:
            if self._orders.get(task_id) is order:
                del self._orders[task_id]
