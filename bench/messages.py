"""NATS messages per task, as the server counts them: what each connection sent it and what it sent each
connection (its `/connz` monitoring endpoint), summed per client name over a run.

Unlike throughput and CPU, which move by 10-15 % between runs minutes apart on a shared machine, these counts
are the same run after run: they show what a change of design removes (a stored write is a publish and its
ack; every consumer of it adds a delivery and an ack) without waiting for the noise to average out.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass

_SERVICE_PREFIX = "maestro-"
_HARNESS_PREFIX = "bench-"
HARNESS = "harness"
"""The name every benchmark's own connection counts under (bench-pipeline, bench-baseline, ...)."""
_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Traffic:
    """Messages one client (or all of them) exchanged with the server."""

    sent: int
    """Client -> server: publishes, requests, replies, acks, pull requests."""
    received: int
    """Server -> client: deliveries, replies, acks of publishes, pull statuses."""

    def __add__(self, other: Traffic) -> Traffic:
        return Traffic(self.sent + other.sent, self.received + other.received)

    def __sub__(self, other: Traffic) -> Traffic:
        return Traffic(self.sent - other.sent, self.received - other.received)

    @property
    def total(self) -> int:
        """Every message either way."""
        return self.sent + self.received


def _client_name(name: str) -> str:
    """`maestro-orchestrator` -> `orchestrator`, `bench-pipeline` -> `harness` (unnamed: `?`)."""
    if name.startswith(_HARNESS_PREFIX):
        return HARNESS
    return name.removeprefix(_SERVICE_PREFIX) or "?"


def _read_connections(monitor_url: str) -> dict[int, tuple[str, Traffic]]:
    url = f"{monitor_url}/connz?state=any&limit=100000"
    with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as answer:
        connz = json.load(answer)
    return {
        c["cid"]: (_client_name(c.get("name", "")), Traffic(c["in_msgs"], c["out_msgs"]))
        for c in connz.get("connections", [])
    }


async def connections(monitor_url: str) -> dict[int, tuple[str, Traffic]]:
    """Every connection the server knows of (open, and recently closed): its client name and traffic."""
    return await asyncio.to_thread(_read_connections, monitor_url)


class MessageMeter:
    """Messages per client name from its creation (`start()`) to `spent()`."""

    def __init__(self, monitor_url: str) -> None:
        self._url = monitor_url
        self._start: dict[int, tuple[str, Traffic]] = {}

    async def start(self) -> MessageMeter:
        """Take the starting counts."""
        self._start = await connections(self._url)
        return self

    async def spent(self) -> dict[str, Traffic]:
        """Messages per client name since start()."""
        by_name: dict[str, Traffic] = {}
        for cid, (name, now) in (await connections(self._url)).items():
            before = self._start.get(cid, (name, Traffic(0, 0)))[1]
            by_name[name] = by_name.get(name, Traffic(0, 0)) + (now - before)
        return {name: traffic for name, traffic in by_name.items() if traffic.total}


def total(traffic: Mapping[str, Traffic], *, leave_out: tuple[str, ...] = ()) -> Traffic:
    """All clients' traffic added up, without those named in `leave_out`."""
    out = Traffic(0, 0)
    for name, one in traffic.items():
        if name not in leave_out:
            out += one
    return out


def line(traffic: Mapping[str, Traffic], per: int) -> str:
    """Messages per task (or per message) by client, busiest first, `sent/received`; then the services'
    total (the harness left out) and everyone's."""
    parts = sorted(traffic.items(), key=lambda item: -item[1].total)
    services = total(traffic, leave_out=(HARNESS,))
    everyone = total(traffic)
    return ", ".join(
        [f"{name} {one.sent / per:.2f}/{one.received / per:.2f}" for name, one in parts]
        + [
            f"services total {services.total / per:.1f}, with the harness {everyone.total / per:.1f} "
            "(sent/received by each client, as the server counts them)"
        ]
    )
