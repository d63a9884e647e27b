"""Which instances of a NATS micro service are alive: every one answers a ping with its id."""

from __future__ import annotations

import asyncio
import contextlib

import msgspec
from nats.aio.client import Client

from maestro import topics

_PING_SILENCE_S = 0.3


class _Ping(msgspec.Struct):
    id: str


_ping_decoder = msgspec.json.Decoder(_Ping)


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

    async def _ping(self, service: str, count: int | None) -> set[str]:
        # Answers arrive together; a 0.3 s silence (or `count` answers) means everyone alive has answered.
        inbox = self._nc.new_inbox()
        sub = await self._nc.subscribe(inbox)
        ids: set[str] = set()
        try:
            await self._nc.publish(topics.service_ping_subject(service), b"", reply=inbox)
            with contextlib.suppress(TimeoutError):
                while count is None or len(ids) < count:
                    reply = await sub.next_msg(timeout=_PING_SILENCE_S)
                    if reply.data:  # not a no-responders status
                        ids.add(_ping_decoder.decode(reply.data).id)
        finally:
            await sub.unsubscribe()
        return ids
