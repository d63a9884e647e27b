"""A connection's typed surface, one part per job; a service uses the part it needs (`bus.streams.publish`).

| part            | module               | what it does                                                     |
|-----------------|----------------------|------------------------------------------------------------------|
| `bus.streams`   | maestro/streams.py   | store typed messages, schedules, KV entries, dead letters        |
| `bus.calls`     | maestro/calls.py     | request an endpoint (by partition), answer endpoints             |
| `bus.discovery` | maestro/discovery.py | which instances of a micro service are alive                     |
| `bus.consumers` | maestro/consuming.py | run handlers on durable consumers (maestro/outcomes.py settles)  |
| `bus.lifetime`  | maestro/lifetime.py  | stop consumers and endpoints; close the intake while draining    |
"""

from __future__ import annotations

from dataclasses import dataclass

from nats.aio.client import Client
from nats.js import JetStreamContext

from maestro.calls import Calls
from maestro.consuming import Consumers
from maestro.discovery import Discovery
from maestro.lifetime import Lifetime
from maestro.metrics import Metrics
from maestro.outcomes import Outcomes
from maestro.replies import Replies
from maestro.settings import Settings
from maestro.streams import Streams


@dataclass(frozen=True)
class Bus:
    """One connection with its settings and metrics, and the parts that publish, call, discover, consume."""

    nc: Client
    js: JetStreamContext
    settings: Settings
    metrics: Metrics
    lifetime: Lifetime
    streams: Streams
    calls: Calls
    discovery: Discovery
    consumers: Consumers

    @classmethod
    def over(cls, nc: Client, settings: Settings, metrics: Metrics) -> Bus:
        """A bus over a connected client: its parts share one reply inbox and one lifetime."""
        js = nc.jetstream(timeout=settings.request_timeout_s)
        lifetime = Lifetime()
        replies = Replies(nc, settings.request_timeout_s)
        streams = Streams(nc, replies, metrics)
        return cls(
            nc=nc,
            js=js,
            settings=settings,
            metrics=metrics,
            lifetime=lifetime,
            streams=streams,
            calls=Calls(nc, replies, metrics, lifetime),
            discovery=Discovery(nc),
            consumers=Consumers(nc, js, settings, lifetime, Outcomes(settings, metrics, streams)),
        )
