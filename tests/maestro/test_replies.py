"""Requests over one inbox against a real nats-server: answers in any order, the late failing on time."""

from __future__ import annotations

import asyncio

import nats
import nats.errors
import pytest
from nats.aio.msg import Msg

from maestro.embedded import EmbeddedServer
from maestro.replies import Replies


async def test_answers_in_any_order_reach_their_callers_and_the_unanswered_time_out(
    nats_server: EmbeddedServer,
) -> None:
    nc = await nats.connect(nats_server.url)
    try:
        held: list[Msg] = []

        async def answer_backwards(msg: Msg) -> None:
            if msg.data == b"never":
                return
            held.append(msg)
            if len(held) == 5:
                for late in reversed(held):
                    await late.respond(late.data.upper())

        await nc.subscribe("svc", cb=answer_backwards)
        replies = Replies(nc, timeout=0.5)
        loop = asyncio.get_running_loop()
        began = loop.time()
        unanswered = asyncio.ensure_future(replies.request("svc", b"never"))
        answered = await asyncio.gather(*(replies.request("svc", f"q{n}".encode()) for n in range(5)))
        assert [m.data for m in answered] == [f"Q{n}".encode() for n in range(5)]
        with pytest.raises(TimeoutError):
            await unanswered
        assert 0.45 <= loop.time() - began < 1.5
        with pytest.raises(TimeoutError):  # a later request gets its own full wait, then fails too
            await replies.request("svc", b"never")
        with pytest.raises(nats.errors.NoRespondersError):
            await replies.request("nobody", b"x")
    finally:
        await nc.close()
