"""Reading a bucket's current records in one pass, and one page of those that match a query."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import NamedTuple

from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from maestro import codec, topics
from maestro.listing import MAX_SCAN, Page, Query, R, Selection, TooMany

_BATCH = 256
_MARKERS = ("KV-Operation", "Nats-Marker-Reason")
"""Headers of a key's deletion or purge (by a client, or by the server when its age runs out)."""


class Entry(NamedTuple):
    """A key's current value in a bucket, and the revision (stream sequence) it was stored at."""

    key: str
    value: bytes
    revision: int


async def current_entries(js: JetStreamContext, bucket: str, *, most: int = MAX_SCAN) -> AsyncIterator[Entry]:
    """Every key's current entry in a bucket, in one pass of an ephemeral consumer delivering the last
    message of each key (deleted keys skipped), ending at the message after which none was pending.

    The end is told by each message's own count of what is still pending, never by a marker raced against
    the consumer's creation: nats-py's KV watcher (and so `KeyValue.keys()`) can signal "no more" before the
    first values arrive, which listed too few records under load and made a running agent's role look
    unserved. Raises TooMany before reading anything when the bucket holds more than `most` messages (with
    history 1, one per key), and during the pass if it grew past `most`.
    """
    stream = topics.kv_stream(bucket)
    held = (await js.stream_info(stream)).state.messages
    if held > most:
        raise TooMany(bucket, held, most)
    if held == 0:
        return
    prefix = f"$KV.{bucket}."
    config = ConsumerConfig(
        deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
        ack_policy=AckPolicy.NONE,
        inactive_threshold=30.0,
        mem_storage=True,
    )
    sub = await js.pull_subscribe(f"{prefix}>", stream=stream, config=config)
    try:
        seen = 0
        while True:
            try:
                msgs = await sub.fetch(_BATCH, timeout=5.0)
            except NatsTimeoutError:
                # Nothing came: what was counted may have expired (a bucket with a TTL) before it was
                # delivered. Done when the consumer has nothing pending; else ask again.
                if (await sub.consumer_info()).num_pending == 0:
                    return
                continue
            for msg in msgs:
                seen += 1
                if seen > most:
                    raise TooMany(bucket, seen, most)
                removed = msg.headers is not None and any(h in msg.headers for h in _MARKERS)
                if msg.data and not removed:
                    yield Entry(msg.subject[len(prefix) :], msg.data, msg.metadata.sequence.stream)
                if msg.metadata.num_pending == 0:
                    return
    finally:
        with contextlib.suppress(NatsError):  # the connection closed under the pass: nothing to stop
            await sub.unsubscribe()


async def current_values(js: JetStreamContext, bucket: str, *, most: int = MAX_SCAN) -> AsyncIterator[bytes]:
    """Every key's current value in a bucket (current_entries(), values only)."""
    async for entry in current_entries(js, bucket, most=most):
        yield entry.value


async def keys(js: JetStreamContext, bucket: str) -> list[str]:
    """Every key of a bucket that has a current value (current_entries(), keys only)."""
    return [entry.key async for entry in current_entries(js, bucket)]


async def scan(
    js: JetStreamContext,
    bucket: str,
    query: Query,
    type_: type[R],
    role_of: Callable[[R], str | None] = lambda _: None,
) -> Page[R]:
    """One page of the records of type `type_` in `bucket` matching `query`, newest first.

    Every page costs a pass over the whole bucket: each current record is read and decoded once, and only
    the page's records are kept. A bucket of more than listing.MAX_SCAN records raises TooMany, unread.
    A record that does not decode is left out.
    """
    selection: Selection[R] = Selection(query)
    async for value in current_values(js, bucket):
        with contextlib.suppress(codec.DecodeError):
            record = codec.decode(type_, value)
            selection.offer(record, role_of(record))
    return selection.page()
