"""Provisioning is idempotent and brings an older release's streams and buckets up to date."""

from __future__ import annotations

import dataclasses

from maestro import topics, topology
from maestro.bus import Bus


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
