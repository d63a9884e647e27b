"""Reading a bucket's current records in one pass, and one page of those that match a query."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

from nats.errors import Error as NatsError
from nats.js.kv import KeyValue

from maestro import codec
from maestro.listing import MAX_SCAN, Page, Query, R, Selection, TooMany


async def current_values(kv: KeyValue, *, most: int = MAX_SCAN) -> AsyncIterator[bytes]:
    """Every key's current value in a bucket, in one pass of an ordered consumer (the last value per key;
    deleted keys skipped), as the bucket was when the pass began.

    Raises TooMany before reading anything when the bucket holds more than `most` messages (with history 1,
    one per key), and during the pass if it grew past `most` since.
    """
    status = await kv.status()
    if status.values > most:
        raise TooMany(status.bucket, status.values, most)
    watcher = await kv.watchall(ignore_deletes=True)
    try:
        seen = 0
        while (entry := await anext(watcher)) is not None:  # None: the end of what was stored
            seen += 1
            if seen > most:
                raise TooMany(status.bucket, seen, most)
            if entry.value:
                yield entry.value
    finally:
        with contextlib.suppress(NatsError):  # the connection closed under the pass: nothing to stop
            await watcher.stop()  # type: ignore[no-untyped-call]


async def scan(
    kv: KeyValue, query: Query, type_: type[R], role_of: Callable[[R], str | None] = lambda _: None
) -> Page[R]:
    """One page of the records of type `type_` in `kv` matching `query`, newest first.

    Every page costs a pass over the whole bucket: each current record is read and decoded once, and only
    the page's records are kept. A bucket of more than listing.MAX_SCAN records raises TooMany, unread.
    A record that does not decode is left out.
    """
    selection: Selection[R] = Selection(query)
    async for value in current_values(kv):
        with contextlib.suppress(codec.DecodeError):
            record = codec.decode(type_, value)
            selection.offer(record, role_of(record))
    return selection.page()
