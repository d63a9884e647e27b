"""Read a task's events from the audit stream: all of them so far, or follow them as they come."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from datetime import datetime
from typing import NamedTuple

from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from maestro import codec, lifecycle, topics
from proto.v1 import TaskEvent, TaskRecord, separate

DIRECT_MOST = 32
"""Events of one task read one request each (no consumer) before the rest are read through a consumer: a
consumer costs the server its creation, state and deletion, and readers that poll many tasks whose records
lag (a client waiting on thousands) made thousands of them at once, until the server refused more."""


async def _stored(
    js: JetStreamContext, task_id: str, *, follow: bool
) -> AsyncIterator[tuple[int, TaskEvent]]:
    subject = topics.EVENTS.where(task_id=task_id)
    after = 0
    if not follow:
        read = 0
        async with contextlib.aclosing(_one_by_one(js, subject, after_seq=0)) as direct:
            async for after, read_event in direct:
                if read_event is not None:
                    yield after, read_event
                read += 1
                if read == DIRECT_MOST:
                    break
            else:
                return  # all of them read: no consumer needed
    config = ConsumerConfig(
        ack_policy=AckPolicy.NONE,
        deliver_policy=DeliverPolicy.BY_START_SEQUENCE if after else DeliverPolicy.ALL,
        opt_start_seq=after + 1 if after else None,
        inactive_threshold=30.0,
        mem_storage=True,
    )
    sub = await js.pull_subscribe(subject, stream=topics.STREAM_EVENTS, config=config)
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
                    event: TaskEvent = codec.decode(TaskEvent, msg.data)  # type: ignore[arg-type]
                    yield msg.metadata.sequence.stream, event
            if not follow and msgs[-1].metadata.num_pending == 0:
                return
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()


async def _events(js: JetStreamContext, task_id: str, *, follow: bool) -> AsyncIterator[TaskEvent]:
    async for _, stored in _stored(js, task_id, follow=follow):
        for event in separate(stored):  # an acceptance stored with its verdict is read as both
            yield event


async def read_events(js: JetStreamContext, task_id: str) -> list[TaskEvent]:
    """Every event of one task stored so far, oldest first."""
    return [event async for event in _events(js, task_id, follow=False)]


async def read_stored(js: JetStreamContext, task_id: str) -> list[tuple[int, TaskEvent]]:
    """Every event of one task stored so far with its stream sequence, oldest first (the last sequence is
    what a write that must not pass a newer event expects: Streams.publish's `after_seq`)."""
    return [stored async for stored in _stored(js, task_id, follow=False)]


async def folded(js: JetStreamContext, task_id: str) -> TaskRecord | None:
    """The record one task's stored events make (lifecycle.fold), or None when there are none: what a reader
    is answered with while the stored record still lags the events (MAESTRO_RECORD_LINGER_S)."""
    return lifecycle.fold(await read_stored(js, task_id))


def follow_events(js: JetStreamContext, task_id: str) -> AsyncIterator[TaskEvent]:
    """A task's events, oldest first, then new ones as they are stored; the caller decides when to stop."""
    return _events(js, task_id, follow=True)


async def stored_between(
    js: JetStreamContext, subject: str, after_seq: int, before_seq: int
) -> list[tuple[int, TaskEvent]]:
    """The events stored on one task's `subject` after stream sequence `after_seq` and before `before_seq`,
    oldest first, with their sequences; a message that is not a task event is skipped.

    Each is read from the stream's leader (one request per event, no consumer), never from a replica that
    may lag behind it: what is missing here is taken to be missing.
    """
    found: list[tuple[int, TaskEvent]] = []
    async with contextlib.aclosing(_one_by_one(js, subject, after_seq)) as stored:
        async for seq, event in stored:
            if seq >= before_seq:
                break
            if event is not None:
                found.append((seq, event))
    return found


async def _one_by_one(
    js: JetStreamContext, subject: str, after_seq: int
) -> AsyncGenerator[tuple[int, TaskEvent | None], None]:
    """Each event stored on `subject` after stream sequence `after_seq`, oldest first, with its sequence (None
    for a message that is not a task event): one request each to the stream's leader, no consumer."""
    seq = after_seq + 1
    while True:
        try:
            raw = await js.get_msg(topics.STREAM_EVENTS, seq=seq, subject=subject, next=True)
        except NotFoundError:
            return
        if raw.seq is None:
            return
        try:
            event: TaskEvent | None = codec.decode(TaskEvent, raw.data or b"")  # type: ignore[arg-type]
        except codec.DecodeError:
            event = None
        yield raw.seq, event
        seq = raw.seq + 1


class Stored(NamedTuple):
    """An event as the stream holds it: its sequence, when the server stored it, and the event."""

    seq: int
    stored_at: datetime | None
    event: TaskEvent


async def last_stored(js: JetStreamContext, subject: str) -> Stored | None:
    """The last event stored on one task's `subject`, or None, as the stream's leader has it (a replica
    that lags behind could show a task that ended as still running)."""
    try:
        raw = await js.get_msg(topics.STREAM_EVENTS, subject=subject)
    except NotFoundError:
        return None
    try:
        event: TaskEvent = codec.decode(TaskEvent, raw.data or b"")  # type: ignore[arg-type]
    except codec.DecodeError:
        return None
    return Stored(raw.seq or 0, raw.time, event)
