"""Compare-and-set writes of KV entries through the bus, against a real nats-server."""

from __future__ import annotations

import pytest
from nats.js.errors import NoStreamResponseError

from maestro import topics
from maestro.bus import Bus
from maestro.errors import WrongRevision


async def test_a_write_lands_only_on_the_revision_it_was_based_on(bus: Bus) -> None:
    kv = await bus.js.key_value(topics.BUCKET_BUDGET)
    first = await bus.streams.compare_and_set(topics.BUCKET_BUDGET, "acme", b"one", None)
    with pytest.raises(WrongRevision):
        await bus.streams.compare_and_set(
            topics.BUCKET_BUDGET, "acme", b"again", None
        )  # only if it has no entry
    second = await bus.streams.compare_and_set(topics.BUCKET_BUDGET, "acme", b"two", first)
    with pytest.raises(WrongRevision):
        await bus.streams.compare_and_set(topics.BUCKET_BUDGET, "acme", b"stale", first)
    other = await kv.update("acme", b"three", last=second)  # another writer, through nats-py
    with pytest.raises(WrongRevision):
        await bus.streams.compare_and_set(topics.BUCKET_BUDGET, "acme", b"stale", second)
    assert await bus.streams.compare_and_set(topics.BUCKET_BUDGET, "acme", b"four", other) > other
    assert (await kv.get("acme")).value == b"four"


async def test_a_write_nobody_stores_fails_at_once(bus: Bus) -> None:
    with pytest.raises(NoStreamResponseError):
        await bus.streams.compare_and_set("no_such_bucket", "acme", b"x", None)


async def test_an_unanswered_write_times_out(bus: Bus) -> None:
    silent = await bus.nc.subscribe("$KV.silent.>")  # receives the write, never acknowledges it
    bus = Bus.over(bus.nc, bus.settings.with_(request_timeout_s=0.2), bus.metrics)
    try:
        with pytest.raises(TimeoutError):
            await bus.streams.compare_and_set("silent", "acme", b"x", None)
    finally:
        await silent.unsubscribe()
