"""What a stream holds, read from its start by a throwaway consumer: the audit log, the DLQ."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import msgspec
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from chaos.facts import StoredEvent
from maestro import topics
from proto.v1 import DeadLetter, TaskEvent

_BATCH = 1000
_FETCH_S = 2.0
_events = msgspec.json.Decoder(TaskEvent)
_letters = msgspec.json.Decoder(DeadLetter)


@dataclass(frozen=True)
class Stored:
    """One message as the stream holds it."""

    seq: int
    stored_at: float
    subject: str
    data: bytes


async def read_all(js: JetStreamContext, stream: str, subjects: str) -> list[Stored]:
    """Every message of `stream` on `subjects` stored so far, oldest first."""
    config = ConsumerConfig(
        ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL, inactive_threshold=30.0, mem_storage=True
    )
    sub = await js.pull_subscribe(subjects, stream=stream, config=config)
    found: list[Stored] = []
    try:
        if (await sub.consumer_info()).num_pending == 0:
            return found
        while True:
            try:
                msgs = await sub.fetch(_BATCH, timeout=_FETCH_S)
            except TimeoutError:
                return found
            for msg in msgs:
                meta = msg.metadata
                found.append(Stored(meta.sequence.stream, meta.timestamp.timestamp(), msg.subject, msg.data))
            if msgs[-1].metadata.num_pending == 0:
                return found
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()


async def task_events(js: JetStreamContext) -> tuple[dict[str, list[StoredEvent]], int]:
    """Every task's events by task id, oldest first, and how many stored events did not decode."""
    found: dict[str, list[StoredEvent]] = {}
    undecodable = 0
    for stored in await read_all(js, topics.STREAM_EVENTS, topics.EVENTS.all):
        try:
            event = _events.decode(stored.data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            undecodable += 1
            continue
        found.setdefault(event.task_id, []).append(StoredEvent(stored.seq, stored.stored_at, event))
    return found, undecodable


class _Kind(msgspec.Struct):
    kind: str = ""


_kinds = msgspec.json.Decoder(_Kind)


async def budget_event_kinds(js: JetStreamContext) -> dict[str, int]:
    """How many budget events of each kind (`budget.hold_expired`, ...) were stored."""
    counts: dict[str, int] = {}
    for stored in await read_all(js, topics.STREAM_BUDGET_EVENTS, topics.BUDGET_EVENTS.all):
        kind = _kinds.decode(stored.data).kind
        counts[kind] = counts.get(kind, 0) + 1
    return counts


async def dead_letters(js: JetStreamContext) -> list[DeadLetter]:
    """Every dead letter so far."""
    return [_letters.decode(s.data) for s in await read_all(js, topics.STREAM_DLQ, topics.DLQ.all)]
