"""Provisioning is idempotent and brings an older release's streams and buckets up to date."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator

from nats.aio.client import Client

from maestro import runtime, topics, topology
from maestro.bus import Bus
from maestro.settings import Settings


async def test_ensure_runs_again_and_updates_what_changed(bus: Bus) -> None:
    await topology.ensure(bus.js, bus.settings)  # the fixture ensured once already
    older = dataclasses.replace(bus.settings, event_max_age_s=3600.0)
    wanted = topology.topology(older)
    # An older release described a bucket and sized a stream differently: both must be brought up to date.
    for bucket in wanted.buckets:
        info = await bus.js.stream_info(topics.kv_stream(str(bucket.bucket)))
        await bus.js.update_stream(
            dataclasses.replace(info.config, description="from an older release", max_age=600.0)
        )
    await topology.ensure(bus.js, older)
    events = await bus.js.stream_info(topics.STREAM_EVENTS)
    assert events.config.max_age == 3600.0
    for bucket in wanted.buckets:
        info = await bus.js.stream_info(topics.kv_stream(str(bucket.bucket)))
        assert info.config.description == bucket.description
        assert info.config.max_age == (bucket.ttl or 0)  # a ttl changed between releases is applied too
    assert await topology.is_provisioned(bus.js)


async def test_services_starting_at_once_on_a_new_server_all_provision_it(settings: Settings) -> None:
    # Every service runs ensure() as it starts; `maestro up` starts them together on an empty server, so
    # they race to create the same streams (a bucket made write-once is one update past its creation).
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(connected(settings, f"s{i}")) for i in range(12)]
        await asyncio.gather(*(topology.ensure(nc.jetstream(), settings) for nc in clients))
        js = clients[0].jetstream()
        assert await topology.is_provisioned(js)
        claims = await js.stream_info(topics.kv_stream(topics.BUCKET_CLAIMS))
        assert claims.config.discard_new_per_subject


@contextlib.asynccontextmanager
async def connected(settings: Settings, name: str) -> AsyncIterator[Client]:
    nc = await runtime.connect(settings, name)
    try:
        yield nc
    finally:
        await nc.close()
