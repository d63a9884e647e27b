"""Read a task's events from the audit stream: all of them so far, or follow them as they come."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from maestro import codec, topics
from proto.v1 import TaskEvent


async def _events(js: JetStreamContext, task_id: str, *, follow: bool) -> AsyncIterator[TaskEvent]:
    config = ConsumerConfig(
        ack_policy=AckPolicy.NONE,
        deliver_policy=DeliverPolicy.ALL,
        inactive_threshold=30.0,
        mem_storage=True,
    )
    sub = await js.pull_subscribe(
        topics.EVENTS.where(task_id=task_id), stream=topics.STREAM_EVENTS, config=config
    )
    try:
        if not follow and (await sub.consumer_info()).num_pending == 0:
            return
        while True:
            try:
                msgs = await sub.fetch(256, timeout=1.0)
            except TimeoutError:
                if follow:
                    continue
                return
            for msg in msgs:
                with contextlib.suppress(codec.DecodeError):
                    yield codec.decode(TaskEvent, msg.data)  # type: ignore[arg-type]
            if not follow and msgs[-1].metadata.num_pending == 0:
                return
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()


async def read_events(js: JetStreamContext, task_id: str) -> list[TaskEvent]:
    """Every event of one task stored so far, oldest first."""
    return [event async for event in _events(js, task_id, follow=False)]


def follow_events(js: JetStreamContext, task_id: str) -> AsyncIterator[TaskEvent]:
    """A task's events, oldest first, then new ones as they are stored; the caller decides when to stop."""
    return _events(js, task_id, follow=True)
