"""Consumer lag and the DLQ's depth as gauges, read in the background and never at scrape time."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry

from maestro import topics
from maestro.backlog import Backlog, ConsumerLag
from maestro.bus import Bus
from services.orchestrator.lag import BacklogGauges, refresh


def samples(gauges: BacklogGauges) -> dict[tuple[str, str], float]:
    registry = CollectorRegistry()
    registry.register(gauges)
    return {
        (s.name, s.labels.get("consumer", "")): s.value
        for family in registry.collect()
        for s in family.samples
    }


def test_the_latest_read_is_exported_per_consumer_with_the_dlq_and_when_it_was_read() -> None:
    gauges = BacklogGauges()
    assert samples(gauges) == {}  # nothing read yet: no number rather than a made-up 0
    at = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    guard = ConsumerLag(topics.STREAM_REQUESTS, "guard", 7, 2, 1, 1, at, (topics.REQUESTS.all,), 30.0, 5)
    gauges.latest = Backlog(consumers=(guard,), missing=(), dlq_depth=3, read_at=at)
    assert samples(gauges) == {
        ("maestro_consumer_pending_messages", "guard"): 7,
        ("maestro_consumer_ack_pending_messages", "guard"): 2,
        ("maestro_consumer_redelivered_messages", "guard"): 1,
        ("maestro_consumer_waiting_pulls", "guard"): 1,
        ("maestro_dlq_messages", ""): 3,
        ("maestro_backlog_read_timestamp_seconds", ""): at.timestamp(),
    }


async def test_refresh_reads_the_server_until_the_bus_stops(bus: Bus) -> None:
    await bus.js.publish(topics.DLQ.subject("guard"), b"a dead letter")
    gauges = Told()
    refreshing = asyncio.create_task(refresh(bus, gauges))
    async with asyncio.timeout(5):
        await gauges.read.wait()  # the first read starts at once
    assert gauges.latest is not None
    assert gauges.latest.dlq_depth == 1
    bus.lifetime.stop()
    async with asyncio.timeout(5):
        await refreshing  # a stop cuts the wait before the next read short


class Told(BacklogGauges):
    """Gauges that say when a read was stored in them."""

    def __init__(self) -> None:
        self.read = asyncio.Event()
        super().__init__()

    def __setattr__(self, name: str, value: object) -> None:
        super().__setattr__(name, value)
        if name == "latest" and value is not None:
            self.read.set()
