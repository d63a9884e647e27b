"""Which instances of a NATS micro service are alive (every one answers a ping with its id), and how each
is doing (its stats: version, start, requests and errors per endpoint)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

import msgspec
from nats.aio.client import Client

from maestro import topics

_PING_SILENCE_S = 0.3


class _Ping(msgspec.Struct):
    id: str


_ping_decoder = msgspec.json.Decoder(_Ping)

T = TypeVar("T")


class EndpointStats(msgspec.Struct, frozen=True):
    """One endpoint's counts since its instance started, as nats micro reports them."""

    name: str
    subject: str = ""
    num_requests: int = 0
    num_errors: int = 0
    average_processing_time: int = 0
    """Nanoseconds."""
    last_error: str | None = None


class InstanceStats(msgspec.Struct, frozen=True):
    """One running instance of a micro service, as its answer to `$SRV.STATS` has it."""

    name: str
    id: str
    version: str
    started: datetime | None = None
    endpoints: list[EndpointStats] = []


_stats_decoder = msgspec.json.Decoder(InstanceStats)


class Discovery:
    """Pings the instances of a micro service and collects the ids that answer."""

    def __init__(self, nc: Client) -> None:
        self._nc = nc

    async def instances(self, service: str, count: int, *, within: float = 30.0) -> set[str]:
        """Wait until at least `count` instances of a micro service answer a ping; their ids.

        Raises TimeoutError when fewer answer within `within` seconds.
        """
        async with asyncio.timeout(within):
            while True:
                ids = await self._ping(service, count)
                if len(ids) >= count:
                    return ids

    async def live_instances(self, service: str) -> set[str]:
        """The ids of the instances of a micro service that answer a ping now (within ~0.3 s)."""
        return await self._ping(service, None)

    async def stats(self, service: str | None = None) -> list[InstanceStats]:
        """The stats of every instance of a micro service (of every micro service, without a name) that
        answers now (within ~0.3 s); an answer that is not stats is left out."""
        return await self._gather(topics.service_stats_subject(service), _stats_decoder.decode, None)

    async def _ping(self, service: str, count: int | None) -> set[str]:
        pings = await self._gather(topics.service_ping_subject(service), _ping_decoder.decode, count)
        return {ping.id for ping in pings}

    async def _gather(self, subject: str, decode: Callable[[bytes], T], count: int | None) -> list[T]:
        # Answers arrive together; a 0.3 s silence (or `count` answers) means everyone alive has answered.
        inbox = self._nc.new_inbox()
        sub = await self._nc.subscribe(inbox)
        answers: list[T] = []
        try:
            await self._nc.publish(subject, b"", reply=inbox)
            with contextlib.suppress(TimeoutError):
                while count is None or len(answers) < count:
                    reply = await sub.next_msg(timeout=_PING_SILENCE_S)
                    if reply.data:  # not a no-responders status
                        with contextlib.suppress(msgspec.DecodeError):
                            answers.append(decode(reply.data))
        finally:
            await sub.unsubscribe()
        return answers
