"""Consumer lag and the DLQ's depth as gauges: maestro/backlog.py's read, refreshed in the background.

A scrape never waits on NATS: it reads the last backlog read (`maestro_backlog_read_timestamp_seconds` says
when that was, so a stale one shows). One orchestrator reads for the whole mesh, every
MAESTRO_BACKLOG_INTERVAL_S: a read is one request per durable, a few dozen in all.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import nats.errors
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from maestro.backlog import Backlog, read_backlog, wanted_durables
from maestro.bus import Bus
from proto.v1 import ROLES

log = logging.getLogger(__name__)


class BacklogGauges(Collector):
    """The latest backlog read, as gauges per stream and consumer, and the DLQ's depth."""

    def __init__(self) -> None:
        self.latest: Backlog | None = None

    def collect(self) -> Iterator[Metric]:
        labels = ["stream", "consumer"]
        families = {
            "pending": GaugeMetricFamily(
                "maestro_consumer_pending_messages",
                "Messages stored for a durable consumer and not yet delivered: its backlog",
                labels=labels,
            ),
            "ack_pending": GaugeMetricFamily(
                "maestro_consumer_ack_pending_messages",
                "Messages a durable consumer delivered and nobody acknowledged yet",
                labels=labels,
            ),
            "redelivered": GaugeMetricFamily(
                "maestro_consumer_redelivered_messages",
                "Messages a durable consumer delivered more than once, not yet acknowledged",
                labels=labels,
            ),
            "waiting": GaugeMetricFamily(
                "maestro_consumer_waiting_pulls",
                "Pull requests waiting on a durable consumer: its idle pullers",
                labels=labels,
            ),
        }
        dlq = GaugeMetricFamily("maestro_dlq_messages", "Dead letters stored in the DLQ stream")
        read = GaugeMetricFamily(
            "maestro_backlog_read_timestamp_seconds", "When the consumers' backlog was last read (Unix time)"
        )
        latest = self.latest
        if latest is not None:
            for lag in latest.consumers:
                key = [lag.stream, lag.consumer]
                families["pending"].add_metric(key, lag.pending)
                families["ack_pending"].add_metric(key, lag.ack_pending)
                families["redelivered"].add_metric(key, lag.redelivered)
                families["waiting"].add_metric(key, lag.waiting)
            if latest.dlq_depth is not None:
                dlq.add_metric([], latest.dlq_depth)
            read.add_metric([], latest.read_at.timestamp())
        yield from families.values()
        yield dlq
        yield read


async def refresh(bus: Bus, gauges: BacklogGauges) -> None:
    """Read the backlog into `gauges` now and every MAESTRO_BACKLOG_INTERVAL_S, until the bus stops: every
    service's durables and, with fair dispatch, each role's waiting tasks; a read the server does not answer
    leaves the last one in place (its timestamp ages)."""
    wanted = wanted_durables(ROLES, fair_dispatch=bus.settings.fair_dispatch)
    while not bus.lifetime.stopping:
        try:
            gauges.latest = await read_backlog(bus.js, wanted)
        except (nats.errors.Error, TimeoutError) as exc:
            log.warning("could not read the consumers' backlog: %s", exc)
        await bus.lifetime.sleep(bus.settings.backlog_interval_s)
