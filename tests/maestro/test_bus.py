"""The bus's outcome table against a real nats-server: ack, retry, reject to DLQ, crash until max_deliver."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from nats.js.errors import APIError, NoStreamResponseError

from maestro import codec, topics
from maestro.bus import Bus
from maestro.deliveries import Consumer, Delivery
from maestro.errors import Backpressure, Reject, RemoteError, Retry
from proto.v1 import DeadLetter, GetLedger, LedgerView, TaskRequest

CONSUMER = Consumer(
    stream=topics.STREAM_REQUESTS,
    durable="test-bus",
    filter_subject=topics.REQUESTS.all,
    type=TaskRequest,
    origin="test",
)


async def read_dlq(bus: Bus, count: int, within: float = 5.0) -> list[DeadLetter]:
    sub = await bus.js.pull_subscribe(topics.DLQ.all, stream=topics.STREAM_DLQ)
    letters: list[DeadLetter] = []
    try:
        async with asyncio.timeout(within):
            while len(letters) < count:
                try:
                    msgs = await sub.fetch(count - len(letters), timeout=0.5)
                except TimeoutError:
                    continue
                letters.extend(codec.decode(DeadLetter, m.data) for m in msgs)
    finally:
        await sub.unsubscribe()
    return letters


@asynccontextmanager
async def consuming(bus: Bus, consumer: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    """Run `consumer` (a bus.consumers.consume or consume_batches call) for the block; then stop the bus and
    wait for the consumer to return."""
    task = asyncio.create_task(consumer)
    try:
        yield
    finally:
        bus.lifetime.stop()
        await asyncio.wait_for(task, 5)


async def run_until(bus: Bus, handler, done: asyncio.Event, **kwargs) -> None:  # type: ignore[no-untyped-def]
    async with consuming(bus, bus.consumers.consume(CONSUMER, handler, **kwargs)), asyncio.timeout(10):
        await done.wait()


def request(n: int) -> TaskRequest:
    return TaskRequest(id=f"req-{n}", tenant="acme", role="planner", prompt=f"task {n}")


async def test_returned_handler_acks_and_each_message_is_handled_once(bus: Bus) -> None:
    seen: list[str] = []
    done = asyncio.Event()

    async def handler(msg: TaskRequest, delivery: Delivery) -> None:
        seen.append(msg.id)
        if len(seen) == 20:
            done.set()

    for n in range(20):
        await bus.streams.publish(topics.REQUESTS.at("acme"), request(n), msg_id=f"req-{n}")
    await run_until(bus, handler, done)
    assert sorted(seen) == sorted(f"req-{n}" for n in range(20))
    info = await bus.js.stream_info(topics.STREAM_REQUESTS)
    assert info.state.messages == 0  # acked work-queue messages are gone


async def test_retry_redelivers_after_the_delay(bus: Bus) -> None:
    attempts: list[int] = []
    done = asyncio.Event()

    async def handler(msg: TaskRequest, delivery: Delivery) -> None:
        attempts.append(delivery.attempt)
        if delivery.attempt < 3:
            raise Retry(0.05)
        done.set()

    await bus.streams.publish(topics.REQUESTS.at("acme"), request(1))
    await run_until(bus, handler, done)
    assert attempts == [1, 2, 3]


async def test_undecodable_and_rejected_messages_go_to_the_dlq_and_serving_continues(bus: Bus) -> None:
    handled: list[str] = []
    hooked: list[str] = []
    done = asyncio.Event()

    async def handler(msg: TaskRequest, delivery: Delivery) -> None:
        if msg.prompt == "reject me":
            raise Reject("not this one")
        handled.append(msg.id)
        done.set()

    async def hook(data: bytes, reason: str, subject: str) -> None:
        hooked.append(reason)

    await bus.nc.publish(topics.REQUESTS.subject("acme"), b"\x00\xffnot json")
    await bus.streams.publish(
        topics.REQUESTS.at("acme"),
        TaskRequest(id="bad", tenant="acme", role="planner", prompt="reject me"),
    )
    await bus.streams.publish(topics.REQUESTS.at("acme"), request(7))
    await run_until(bus, handler, done, on_dead_letter=hook)
    assert handled == ["req-7"]
    letters = await read_dlq(bus, 2)
    reasons = sorted(letter.reason for letter in letters)
    assert reasons[0].startswith("rejected: not this one")
    assert reasons[1].startswith("undecodable:")
    assert {letter.origin for letter in letters} == {"test"}
    assert b"\x00\xffnot json" in [letter.data for letter in letters]
    assert len(hooked) == 2


async def test_a_crashing_handler_is_retried_until_max_deliver_then_dead_lettered(bus: Bus) -> None:
    attempts: list[int] = []

    async def handler(msg: TaskRequest, delivery: Delivery) -> None:
        attempts.append(delivery.attempt)
        raise RuntimeError("boom")

    bus = Bus.over(bus.nc, bus.settings.with_(max_deliver=3), bus.metrics)
    await bus.streams.publish(topics.REQUESTS.at("acme"), request(1))
    task = asyncio.create_task(bus.consumers.consume(CONSUMER, handler))
    letters = await read_dlq(bus, 1, within=15)
    bus.lifetime.stop()
    await asyncio.wait_for(task, 5)
    assert attempts == [1, 2, 3]
    assert "failed 3 times" in letters[0].reason and "boom" in letters[0].reason


async def test_serve_answers_and_maps_errors_to_codes(bus: Bus) -> None:
    async def get(req: GetLedger) -> LedgerView:
        if req.tenant == "busy":
            raise Retry(1)
        if req.tenant == "full":
            raise Backpressure(1)
        if req.tenant == "bad":
            raise Reject("no such tenant")
        if req.tenant == "boom":
            raise RuntimeError("boom")
        return LedgerView(
            tenant=req.tenant, limit_micro_usd=10, spent_micro_usd=1, held_micro_usd=2, remaining_micro_usd=7
        )

    serving = asyncio.create_task(bus.calls.serve("budget", "0.1.0", [(topics.BUDGET_GET, get)]))
    await asyncio.sleep(0.1)
    try:
        view = await bus.calls.request(topics.BUDGET_GET, GetLedger(tenant="acme"))
        assert view.remaining_micro_usd == 7
        for tenant, code in (("busy", 503), ("full", 429), ("bad", 400), ("boom", 500)):
            with pytest.raises(RemoteError) as err:
                await bus.calls.request(topics.BUDGET_GET, GetLedger(tenant=tenant))
            assert err.value.code == code
        reply = await bus.nc.request(topics.BUDGET_GET.subject, b"{not json", timeout=2)
        assert reply.headers and reply.headers[topics.HEADER_ERROR_CODE] == "400"
    finally:
        bus.lifetime.stop()
        await asyncio.wait_for(serving, 5)


async def test_request_without_a_server_is_a_503(bus: Bus) -> None:
    with pytest.raises(RemoteError) as err:
        await bus.calls.request(topics.BUDGET_GET, GetLedger(tenant="acme"))
    assert err.value.code == 503


def test_dead_letter_keeps_bytes_exactly() -> None:
    letter = DeadLetter(origin="o", subject="s", reason="r", at=datetime.now(UTC), data=b"\x00\x01")
    assert codec.decode(DeadLetter, codec.encode(letter)).data == b"\x00\x01"


async def test_a_handler_longer_than_the_ack_wait_runs_once(bus: Bus) -> None:
    # ack_wait is 2 s in these settings: the handler holds its message for three times that.
    runs: list[int] = []
    done = asyncio.Event()

    async def handler(msg: TaskRequest, delivery: Delivery) -> None:
        runs.append(delivery.attempt)
        await asyncio.sleep(3 * bus.settings.ack_wait_s)  # the work itself, not a wait for something
        done.set()

    await bus.streams.publish(topics.REQUESTS.at("acme"), request(1))
    task = asyncio.create_task(bus.consumers.consume(CONSUMER, handler))
    try:
        async with asyncio.timeout(20):
            await done.wait()
    finally:
        bus.lifetime.stop()
        await asyncio.wait_for(task, 10)  # returns once every handler has settled its message
    assert runs == [1]
    assert (await bus.js.stream_info(topics.STREAM_REQUESTS)).state.messages == 0
    info = await bus.js.consumer_info(topics.STREAM_REQUESTS, CONSUMER.durable)
    assert info.num_redelivered == 0


async def test_input_nested_too_deeply_is_dead_lettered_once_and_serving_continues(bus: Bus) -> None:
    handled: list[str] = []
    done = asyncio.Event()

    async def handler(msg: TaskRequest, delivery: Delivery) -> None:
        handled.append(msg.id)
        done.set()

    deep = b'{"tenant":"acme","role":"planner","prompt":"x","extra":' + b"[" * 5000 + b"]" * 5000 + b"}"
    await bus.nc.publish(topics.REQUESTS.subject("acme"), deep)
    await bus.streams.publish(topics.REQUESTS.at("acme"), request(2))
    await run_until(bus, handler, done)
    assert handled == ["req-2"]
    letters = await read_dlq(bus, 1)
    assert letters[0].reason == "undecodable: nested too deeply"
    assert letters[0].deliveries == 1


async def test_a_message_retried_without_end_is_dead_lettered_after_max_retries(bus: Bus) -> None:
    attempts: list[int] = []

    async def handler(msg: TaskRequest, delivery: Delivery) -> None:
        attempts.append(delivery.attempt)
        raise Retry(0.01, "the budget is down")

    bus = Bus.over(bus.nc, bus.settings.with_(max_retries=4), bus.metrics)
    await bus.streams.publish(topics.REQUESTS.at("acme"), request(1))
    task = asyncio.create_task(bus.consumers.consume(CONSUMER, handler))
    letters = await read_dlq(bus, 1, within=10)
    bus.lifetime.stop()
    await asyncio.wait_for(task, 5)
    assert attempts == [1, 2, 3, 4]
    assert letters[0].reason == "still retrying after 4 deliveries: the budget is down"


async def test_a_scrubbing_consumer_keeps_only_the_scrubbed_text_in_the_dlq(bus: Bus) -> None:
    async def handler(msg: TaskRequest, delivery: Delivery) -> None:
        raise Reject(f"bad prompt {msg.prompt}")

    scrubbing = Consumer(
        stream=CONSUMER.stream,
        durable="test-bus-scrub",
        filter_subject=CONSUMER.filter_subject,
        type=TaskRequest,
        origin="test",
        scrub=lambda text: text.replace("hunter2", "*****"),
    )
    await bus.streams.publish(
        topics.REQUESTS.at("acme"),
        TaskRequest(id="s1", tenant="acme", role="planner", prompt="hunter2"),
    )
    task = asyncio.create_task(bus.consumers.consume(scrubbing, handler))
    letters = await read_dlq(bus, 1)
    bus.lifetime.stop()
    await asyncio.wait_for(task, 5)
    assert b"hunter2" not in letters[0].data and b"*****" in letters[0].data
    assert letters[0].reason == "rejected: bad prompt *****"


async def test_a_handler_cut_off_by_a_stop_hands_its_message_back_at_once(bus: Bus) -> None:
    # The ack wait is long: only a nak makes the message come back within the test's few seconds.
    bus = Bus.over(bus.nc, bus.settings.with_(ack_wait_s=60.0), bus.metrics)
    started = asyncio.Event()

    async def endless(msg: TaskRequest, delivery: Delivery) -> None:
        started.set()
        await asyncio.Event().wait()

    await bus.streams.publish(topics.REQUESTS.at("acme"), request(1))
    task = asyncio.create_task(bus.consumers.consume(CONSUMER, endless))
    await asyncio.wait_for(started.wait(), 10)
    task.cancel()  # what run_service does when the drain deadline passes
    with pytest.raises(asyncio.CancelledError):
        await task
    bus = Bus.over(bus.nc, bus.settings, bus.metrics)  # consuming again, as a restarted worker would
    attempts: list[int] = []
    done = asyncio.Event()

    async def handler(msg: TaskRequest, delivery: Delivery) -> None:
        attempts.append(delivery.attempt)
        done.set()

    await run_until(bus, handler, done)
    assert attempts == [2]


async def test_nats_being_unreachable_is_waited_out_not_counted_towards_the_dlq(bus: Bus) -> None:
    attempts: list[int] = []
    done = asyncio.Event()

    async def handler(msg: TaskRequest, delivery: Delivery) -> None:
        attempts.append(delivery.attempt)
        if delivery.attempt <= 4:
            raise NoStreamResponseError  # a stream's leader is moving, say
        done.set()

    bus = Bus.over(bus.nc, bus.settings.with_(max_deliver=2), bus.metrics)
    await bus.streams.publish(topics.REQUESTS.at("acme"), request(1))
    await run_until(bus, handler, done)
    assert attempts == [1, 2, 3, 4, 5]
    assert (await bus.js.stream_info(topics.STREAM_DLQ)).state.messages == 0


async def test_a_failed_dead_letter_hook_is_run_again_and_the_letter_kept_once(bus: Bus) -> None:
    hooked: list[int] = []
    done = asyncio.Event()

    async def handler(msg: TaskRequest, delivery: Delivery) -> None:
        raise Reject("never")

    async def hook(data: bytes, reason: str, subject: str) -> None:
        hooked.append(len(hooked) + 1)
        if len(hooked) == 1:
            raise NoStreamResponseError  # could not record the sender's failure: try again
        done.set()

    await bus.streams.publish(topics.REQUESTS.at("acme"), request(1))
    await run_until(bus, handler, done, on_dead_letter=hook)
    assert hooked == [1, 2]
    assert len(await read_dlq(bus, 1)) == 1
    assert (await bus.js.stream_info(topics.STREAM_DLQ)).state.messages == 1


async def test_a_batch_handler_settles_each_message_by_its_own_outcome(bus: Bus) -> None:
    """consume_batches: one call per burst; ack, retry, reject and undecodable, each by the same table."""
    calls: list[list[str]] = []
    tries: dict[str, int] = {}
    done = asyncio.Event()

    async def handler(items: list[tuple[TaskRequest, Delivery]]) -> list[Exception | None]:
        calls.append([msg.id for msg, _ in items])
        outcomes: list[Exception | None] = []
        for msg, delivery in items:
            tries[msg.id] = delivery.attempt
            if msg.prompt == "reject me":
                outcomes.append(Reject("not this one"))
            elif msg.prompt == "again" and delivery.attempt < 2:
                outcomes.append(Retry(0.05))
            else:
                outcomes.append(None)
        if tries.get("again") == 2:
            done.set()
        return outcomes

    await bus.nc.publish(topics.REQUESTS.subject("acme"), b"\x00\xffnot json")
    for prompt in ["fine", "reject me", "again", "fine too"]:
        await bus.streams.publish(
            topics.REQUESTS.at("acme"),
            TaskRequest(id=prompt.replace(" ", "-"), tenant="acme", role="planner", prompt=prompt),
        )
    async with consuming(bus, bus.consumers.consume_batches(CONSUMER, handler)), asyncio.timeout(10):
        await done.wait()
    assert tries == {"fine": 1, "reject-me": 1, "again": 2, "fine-too": 1}
    assert len(calls) < 5  # whole bursts, not one call per message
    letters = await read_dlq(bus, 2)
    assert sorted(letter.reason.split(":")[0] for letter in letters) == ["rejected", "undecodable"]
    info = await bus.js.stream_info(topics.STREAM_REQUESTS)
    assert info.state.messages == 0  # everything else acked


async def test_a_batch_handler_that_raises_fails_each_message_of_its_burst_and_serving_goes_on(
    bus: Bus,
) -> None:
    calls: list[list[int]] = []
    done = asyncio.Event()

    async def handler(items: list[tuple[TaskRequest, Delivery]]) -> list[Exception | None]:
        calls.append([delivery.attempt for _, delivery in items])
        if len(calls) == 1:
            raise RuntimeError("a bug in the batch")
        done.set()
        return [None] * len(items)

    await bus.streams.publish(topics.REQUESTS.at("acme"), request(1))
    async with consuming(bus, bus.consumers.consume_batches(CONSUMER, handler)), asyncio.timeout(10):
        await done.wait()
    assert calls == [[1], [2]]  # handed back with the crash backoff, then delivered again


async def test_deleting_a_message_that_is_not_there_says_so_instead_of_failing(bus: Bus) -> None:
    subject = topics.WAITING.subject("planner", "5", "acme")
    for _ in range(3):
        await bus.js.publish(subject, b"{}")
    assert await bus.streams.delete(topics.STREAM_WAITING, 1) is True
    assert await bus.streams.delete(topics.STREAM_WAITING, 1) is False  # deleted already
    assert await bus.streams.delete(topics.STREAM_WAITING, 3) is True
    assert await bus.streams.delete(topics.STREAM_WAITING, 3) is False  # the last one, deleted already
    assert await bus.streams.delete(topics.STREAM_WAITING, 99) is False  # never stored
    stored = await bus.streams.read(topics.STREAM_WAITING, 2)
    assert stored is not None and stored.subject == subject and stored.data == b"{}"
    assert await bus.streams.read(topics.STREAM_WAITING, 1) is None
    assert await bus.streams.purge(topics.STREAM_WAITING, subject, 3) == 1
    assert await bus.streams.read(topics.STREAM_WAITING, 2) is None


async def test_a_streams_last_write_is_known_after_its_messages_are_gone(bus: Bus) -> None:
    subject = topics.WAITING.subject("planner", "5", "acme")
    assert await bus.streams.last_stored_at(topics.STREAM_WAITING) is None  # never written to
    before = datetime.now(UTC)
    await bus.js.publish(subject, b"{}")
    await bus.streams.purge(topics.STREAM_WAITING, subject, 2)
    last = await bus.streams.last_stored_at(topics.STREAM_WAITING)
    assert last is not None and before <= last <= datetime.now(UTC)
    with pytest.raises(APIError, match="stream not found"):
        await bus.streams.last_stored_at("NO_SUCH_STREAM")
