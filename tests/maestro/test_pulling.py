"""The standing pull: what the window asks for, an idle consumer that does not poll, a consumer deleted
under it, and a stop that hands back what the server sent in the meantime."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from nats.aio.msg import Msg

from maestro import topics
from maestro.bus import Bus
from maestro.deliveries import Consumer, Delivery
from maestro.pulling import PullWindow, delivered_and_sequence
from proto.v1 import TaskRequest
from tests.maestro.test_bus import consuming
from tests.maestro.test_presence import eventually

CONSUMER = Consumer(
    stream=topics.STREAM_REQUESTS,
    durable="test-pulling",
    filter_subject=topics.REQUESTS.all,
    type=TaskRequest,
    origin="test",
)


def request(n: int) -> TaskRequest:
    return TaskRequest(id=f"pull-{n}", tenant="acme", role="planner", prompt=f"task {n}")


def test_the_window_asks_for_its_free_slots_once_enough_are_free() -> None:
    window = PullWindow(capacity=8, refill=4, batch=6)
    assert window.wanted() == 6  # capped at one request's batch
    assert window.wanted() == 0  # 2 free: fewer than refill
    for _ in range(6):
        window.delivered()
    assert (window.held, window.owed) == (6, 0)
    assert window.wanted() == 0
    window.settled()
    window.settled()
    assert window.wanted() == 4
    window.expired(3)  # that request ended with 3 of its 4 unsent
    assert window.owed == 1
    window.lost()
    assert window.owed == 0
    assert window.wanted() == 4


def test_the_window_sends_one_request_at_a_time() -> None:
    window = PullWindow(capacity=8, refill=2, batch=4)
    assert window.wanted() == 4
    window.delivered()
    window.settled()
    window.delivered()
    window.settled()
    assert window.free == 6
    assert window.wanted() == 0  # the open request still owes 2: it is served before any other would be
    window.delivered()
    window.delivered()
    assert window.wanted() == 4  # filled: the next one goes
    window.expired(4)
    assert window.wanted() == 4  # expired unfilled: asked again at once


def test_the_window_never_counts_below_zero() -> None:
    window = PullWindow(capacity=4, refill=1, batch=4)
    window.settled()
    window.expired(10)
    window.delivered()  # a message of a request counted as lost still arrives
    assert (window.held, window.owed) == (1, 0)


async def _pull_requests(bus: Bus, seconds: float) -> list[Msg]:
    """The pull requests this consumer sends within `seconds`, seen as a core NATS subscriber would."""
    seen: list[Msg] = []

    async def on(msg: Msg) -> None:
        seen.append(msg)

    sub = await bus.nc.subscribe(topics.consumer_next_subject(CONSUMER.stream, CONSUMER.durable), cb=on)
    try:
        await asyncio.sleep(seconds)  # counting what happens over a span of time is the point here
    finally:
        await sub.unsubscribe()
    return seen


async def test_an_idle_consumer_keeps_one_standing_request_instead_of_polling(bus: Bus) -> None:
    handled = asyncio.Event()

    async def handler(msg: TaskRequest, delivery: Delivery) -> None:
        handled.set()

    async with consuming(bus, bus.consumers.consume(CONSUMER, handler)):
        await eventually(lambda: _has_waiting(bus), within=5)
        requests = await _pull_requests(bus, 2.0)
        # A fetch loop asks several times a second; a standing pull asks again only when it ran out.
        assert len(requests) == 0
        await bus.streams.publish(topics.REQUESTS.at("acme"), request(1), msg_id="pull-1")
        async with asyncio.timeout(2):
            await handled.wait()


async def test_after_a_burst_an_idle_consumer_is_left_with_one_request(bus: Bus) -> None:
    # Each request outstanding costs the server a heartbeat every few seconds and a renewal when it expires:
    # the refills sent as handlers finished must not pile up into dozens of standing requests.
    handled: set[str] = set()

    async def handler(msg: TaskRequest, delivery: Delivery) -> None:
        handled.add(msg.id)

    count = 3 * bus.settings.concurrency
    async with consuming(bus, bus.consumers.consume(CONSUMER, handler)):
        await eventually(lambda: _has_waiting(bus), within=5)
        await asyncio.gather(
            *(
                bus.streams.publish(topics.REQUESTS.at("acme"), request(n), msg_id=f"pull-{n}")
                for n in range(count)
            )
        )
        await eventually(lambda: _settled(bus), within=10)
        assert len(handled) == count
        info = await bus.js.consumer_info(CONSUMER.stream, CONSUMER.durable)
        assert info.num_waiting == 1


async def _settled(bus: Bus) -> bool:
    info = await bus.js.consumer_info(CONSUMER.stream, CONSUMER.durable)
    return info.num_pending == 0 and info.num_ack_pending == 0


async def _has_waiting(bus: Bus) -> bool:
    try:
        info = await bus.js.consumer_info(CONSUMER.stream, CONSUMER.durable)
    except Exception:
        return False
    return bool(info.num_waiting)


async def _seen(seen: list[str]) -> bool:
    return bool(seen)


async def test_a_consumer_deleted_under_the_pull_is_created_again_and_served(bus: Bus) -> None:
    seen: list[str] = []
    two = asyncio.Event()

    async def handler(msg: TaskRequest, delivery: Delivery) -> None:
        seen.append(msg.id)
        if len(seen) == 2:
            two.set()

    async with consuming(bus, bus.consumers.consume(CONSUMER, handler)):
        await bus.streams.publish(topics.REQUESTS.at("acme"), request(1), msg_id="pull-1")
        await eventually(lambda: _seen(seen), within=5)
        await bus.js.delete_consumer(CONSUMER.stream, CONSUMER.durable)
        await bus.streams.publish(topics.REQUESTS.at("acme"), request(2), msg_id="pull-2")
        async with asyncio.timeout(10):
            await two.wait()
    assert seen == ["pull-1", "pull-2"]


async def test_a_stopped_consumer_leaves_its_messages_to_the_next_one_at_once(bus: Bus) -> None:
    """What the server sent a consumer as it stopped is handed back, not left to the 2 s ack wait."""
    for n in range(200):
        await bus.streams.publish(topics.REQUESTS.at("acme"), request(n), msg_id=f"pull-{n}")
    handled: set[str] = set()
    done = asyncio.Event()

    async def handler(msg: TaskRequest, delivery: Delivery) -> None:
        handled.add(msg.id)
        if len(handled) == 200:
            done.set()

    async def stops_at_once(msg: TaskRequest, delivery: Delivery) -> None:
        await handler(msg, delivery)
        first.lifetime.stop()

    # Small windows, so requests are still outstanding when it stops.
    first = Bus.over(bus.nc, dataclasses.replace(bus.settings, concurrency=4, fetch_batch=4), bus.metrics)
    loop = asyncio.get_running_loop()
    began = loop.time()
    await asyncio.wait_for(first.consumers.consume(CONSUMER, stops_at_once), 5)
    assert len(handled) < 200
    second = Bus.over(bus.nc, bus.settings, bus.metrics)
    async with consuming(second, second.consumers.consume(CONSUMER, handler)), asyncio.timeout(10):
        await done.wait()
    # The settings' ack wait is 2 s: a message left unsettled would only come back after it.
    assert loop.time() - began < 1.5


def test_deliveries_and_sequence_are_read_off_both_forms_of_the_ack_subject() -> None:
    assert delivered_and_sequence("$JS.ACK.S.d.3.17.5.1700000000000000000.2") == (3, 17)
    assert delivered_and_sequence("$JS.ACK.hub.ACCHASH.S.d.4.18.5.1700000000000000000.2.tok") == (4, 18)
    with pytest.raises(ValueError, match="not a JetStream ack subject"):
        delivered_and_sequence("_INBOX.abc")


async def test_a_cancel_ends_a_consumer_wherever_it_lands_even_where_nats_py_swallows_one(bus: Bus) -> None:
    # As tests/maestro/test_following.py: cancels land from 0 to 15 ms into its start, at every step of it;
    # nats-py swallowed some (it catches them while it flushes), and the pull went on until the bus stopped.
    async def handler(_: TaskRequest, __: Delivery) -> None:
        pass

    for step in range(150):
        consumer = asyncio.create_task(bus.consumers.consume(CONSUMER, handler))
        await asyncio.sleep(step / 10_000)
        consumer.cancel()
        done, _ = await asyncio.wait({consumer}, timeout=5)
        assert done, f"cancelled {step / 10:.1f} ms into its start, it went on pulling"
