"""Read what a stream stored on some subjects since a time: the console's charts over time (budget samples,
guard tallies) come from such a range, never from a scan of a whole stream.

An ephemeral pull consumer (in memory, no acks, removed when read) starts at `since` on the server
(`DeliverPolicy.BY_START_TIME`), so what lies before it is never sent; at most `limit` messages are read,
and the range says whether it stopped short, so a chart can say it is partial.

nats-server (2.12) skips the first match of a consumer with several filters that starts by time, so the
consumer starts a second early and the reader drops what was stored before `since` itself.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

_BATCH = 512
_EARLY = timedelta(seconds=1)


@dataclass(frozen=True)
class Stored:
    """One message of a range: its stream sequence, when the server stored it, and its payload."""

    seq: int
    stored_at: datetime
    data: bytes


@dataclass(frozen=True)
class Range:
    """The messages of a range, oldest first; `partial` when more were stored than the limit let be read."""

    messages: list[Stored]
    partial: bool = False


async def read_range(
    js: JetStreamContext,
    stream: str,
    subjects: Sequence[str],
    since: datetime,
    *,
    limit: int = 10_000,
    timeout: float = 2.0,
) -> Range:
    """What `stream` stored on any of `subjects` (wildcards allowed) at or after `since`, oldest first, at
    most `limit` messages."""
    config = ConsumerConfig(
        ack_policy=AckPolicy.NONE,
        deliver_policy=DeliverPolicy.BY_START_TIME,
        opt_start_time=since - _EARLY,
        inactive_threshold=30.0,
        mem_storage=True,
        filter_subjects=list(subjects),
    )
    # The subject of pull_subscribe is the filter when there is one; several go in the config instead.
    sub = await js.pull_subscribe("", stream=stream, config=config)
    found: list[Stored] = []
    try:
        if (await sub.consumer_info()).num_pending == 0:
            return Range(found)
        while len(found) < limit:
            try:
                msgs = await sub.fetch(min(_BATCH, limit - len(found)), timeout=timeout)
            except (TimeoutError, NatsTimeout):
                return Range(found)
            for msg in msgs:
                if msg.metadata.timestamp >= since:
                    found.append(Stored(msg.metadata.sequence.stream, msg.metadata.timestamp, msg.data))
            if msgs[-1].metadata.num_pending == 0:
                return Range(found)
        return Range(found, partial=True)
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
