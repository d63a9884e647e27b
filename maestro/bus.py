"""Publish, request, consume and serve typed messages; the one place that acks, naks, terms or sets errors.

| handler                          | JetStream consumer                          | request/reply          |
|----------------------------------|---------------------------------------------|------------------------|
| returns                          | ack                                         | reply with the answer  |
| raises Retry(delay)              | nak(delay)                                  | error 503              |
| raises Reject, or does not decode| term + DeadLetter to the DLQ                | error 400              |
| raises NotFound                  | (as anything else)                          | error 404              |
| raises anything else             | nak with backoff until max_deliver, then DLQ| error 500              |
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import msgspec
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, PubAck
from nats.js.errors import APIError, NoStreamResponseError, ServiceUnavailableError
from nats.micro import add_service
from nats.micro.request import Request
from nats.micro.service import ServiceConfig

from maestro import codec, logs, topics, tracing
from maestro.errors import NotFound, Reject, RemoteError, Retry, WrongRevision
from maestro.metrics import Metrics
from maestro.pulling import PullWindow, StandingPull, delivered_and_sequence
from maestro.replies import Replies
from maestro.settings import Settings
from proto.v1 import DeadLetter

log = logging.getLogger(__name__)

M = TypeVar("M")
Req = TypeVar("Req")
Resp = TypeVar("Resp")

# Failures that say NATS (or a stream's leader) cannot be reached right now, not that the message is bad.
_UNAVAILABLE = (
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.StaleConnectionError,
    NoStreamResponseError,
    ServiceUnavailableError,
    TimeoutError,
)
_MAX_UNAVAILABLE_BACKOFF_S = 5.0
_DEAD_LETTER_RETRY_S = 1.0
_MAX_BACKOFF_S = 30.0
_PING_SILENCE_S = 0.3
# How often a replica re-reads which partitions it owns: how long a partition may go unserved (its
# requests then fall back to the public subject) or doubly served (slower, never wrong) after a change.
_PARTITION_CHECK_S = 1.0
# JetStream's "wrong last sequence" error codes: the expected-last-subject-sequence check failed.
_WRONG_LAST_SEQUENCE = (10071, 10164)


class _ApiError(msgspec.Struct):
    code: int = 0
    err_code: int | None = None
    description: str = ""


class _Ack(msgspec.Struct):
    """JetStream's answer to a publish: where it was stored, or why not."""

    stream: str = ""
    seq: int = 0
    duplicate: bool = False
    error: _ApiError | None = None


_ack_decoder = msgspec.json.Decoder(_Ack)


class _Ping(msgspec.Struct):
    id: str


_ping_decoder = msgspec.json.Decoder(_Ping)


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


@dataclass(frozen=True)
class Delivery:
    """What a consumer handler may know about the message besides its content."""

    subject: str
    headers: Mapping[str, str]
    attempt: int
    stream_seq: int
    size: int
    _msg: Msg = field(repr=False)

    @property
    def traceparent(self) -> str | None:
        """The W3C traceparent the message carried, if any."""
        return self.headers.get(topics.HEADER_TRACEPARENT)

    async def keepalive(self) -> None:
        """Tell the server the handler is still working, so the message is not redelivered yet."""
        await self._msg.in_progress()


Handler = Callable[[M, Delivery], Awaitable[None]]
BatchHandler = Callable[[list[tuple[M, Delivery]]], Awaitable[list[Exception | None]]]
"""Handles messages that arrived together; what became of each, in order: None, or what it raised."""
_Dispatch = Callable[[Msg], None]
_UNDECODABLE: Any = object()
_InFlight = dict[int, tuple[Msg, float]]
"""Messages whose handler has not settled them yet, by id(msg): the message and when its handler began."""
DeadLetterHook = Callable[[bytes, str, str], Awaitable[None]]
"""Runs after a message went to the DLQ: its bytes, the reason, and the subject it came on."""


@dataclass(frozen=True)
class Consumer(Generic[M]):
    """A durable pull consumer: which stream, which subjects, what type, and the DLQ origin for failures."""

    stream: str
    durable: str
    filter_subject: str
    type: type[M]
    origin: str
    scrub: Callable[[str], str] | None = None
    """Masks what a dead letter keeps of a message (its text and the reason), e.g. credentials in it."""
    strict: bool = False
    """Refuse fields the type does not know (a public edge, where a typo must not pass in silence)."""
    window: int = 0
    """Messages one process holds at once (0: the `concurrency` setting); more for handlers that wait
    on purpose, as the orchestrator's lingering record writes do."""


class Bus:
    """A connection's typed surface: publish, request, consume, serve."""

    def __init__(self, nc: Client, settings: Settings, metrics: Metrics) -> None:
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream(timeout=settings.request_timeout_s)
        self.settings = settings
        self.metrics = metrics
        self._stopping = asyncio.Event()
        self._intake_closed = False
        self._replies = Replies(nc, settings.request_timeout_s)
        self._message_counters: dict[tuple[str, str], Any] = {}
        self._handler_timers: dict[str, Any] = {}
        self._service_ids: dict[str, str] = {}

    # -- lifecycle -------------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop pulling new messages; running handlers finish and consume() returns."""
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        """Whether stop() was called."""
        return self._stopping.is_set()

    def close_intake(self) -> None:
        """Take no new work from outside any more (the mesh is draining); what is under way goes on."""
        self._intake_closed = True

    @property
    def accepting(self) -> bool:
        """Whether new work from outside is taken: not once close_intake() or stop() was called."""
        return not (self._intake_closed or self.stopping)

    # -- publish and request ---------------------------------------------------------------------
    async def publish(
        self,
        subject: str,
        message: Any,
        *,
        msg_id: str | None = None,
        traceparent: str | None = None,
        after_seq: int | None = None,
    ) -> PubAck:
        """Store a message in the stream that owns `subject`; `msg_id` makes a resend a no-op.

        With `after_seq`, it is stored only if the last message on `subject` is still the one at that stream
        sequence (0: only if there is none); raises WrongRevision when another writer got there first.
        """
        headers: dict[str, str] | None = None
        if msg_id or traceparent or after_seq is not None:
            headers = {}
            if msg_id:
                headers[topics.HEADER_MSG_ID] = msg_id
            if traceparent:
                headers[topics.HEADER_TRACEPARENT] = traceparent
            if after_seq is not None:
                headers[topics.HEADER_EXPECTED_LAST_SUBJECT_SEQ] = str(after_seq)
        try:
            return await self._store(subject, codec.encode(message), headers)
        except APIError as exc:
            if after_seq is not None and exc.err_code in _WRONG_LAST_SEQUENCE:
                raise WrongRevision(f"{subject} moved past sequence {after_seq}") from None
            raise

    async def notify(self, subject: str, message: Any) -> None:
        """Send a message to whoever listens on `subject` now (core NATS: not stored, no answer)."""
        await self.nc.publish(subject, codec.encode(message))

    async def schedule(self, subject: str, message: Any, *, due: datetime, target: str) -> PubAck:
        """Have the server store `message` on `target` at `due` (a JetStream message schedule, ADR-51).

        `subject` names the schedule and `target` must be in the same stream, which allows schedules;
        scheduling on `subject` again replaces what was scheduled there, and a `due` in the past comes due
        at once.
        """
        at = due.astimezone(UTC).isoformat().replace("+00:00", "Z")
        headers = {topics.HEADER_SCHEDULE: f"@at {at}", topics.HEADER_SCHEDULE_TARGET: target}
        return await self._store(subject, codec.encode(message), headers)

    async def _store(self, subject: str, data: bytes, headers: dict[str, str] | None) -> PubAck:
        # What js.publish does, over the bus's own cheaper request path (maestro/replies.py).
        try:
            reply = await self._replies.request(subject, data, headers=headers)
        except nats.errors.NoRespondersError:
            raise NoStreamResponseError from None
        ack = _ack_decoder.decode(reply.data)
        if ack.error is not None:
            raise APIError(
                code=ack.error.code, err_code=ack.error.err_code, description=ack.error.description
            )
        return PubAck(stream=ack.stream, seq=ack.seq, duplicate=ack.duplicate or None)

    async def compare_and_set(self, bucket: str, key: str, value: bytes, revision: int | None) -> int:
        """Write a KV entry only if it is still at `revision` (None: only if there is none); the new revision.

        Raises WrongRevision when another writer got there first.
        """
        expected = {topics.HEADER_EXPECTED_LAST_SUBJECT_SEQ: str(revision or 0)}
        try:
            ack = await self._store(topics.kv_subject(bucket, key), value, expected)
        except APIError as exc:
            if exc.err_code in _WRONG_LAST_SEQUENCE:
                raise WrongRevision(f"{bucket}/{key} is no longer at revision {revision}") from None
            raise
        return ack.seq

    async def put(self, bucket: str, key: str, value: bytes) -> int:
        """Write a KV entry whatever is there (KeyValue.put over the cheaper path); its new revision."""
        return (await self._store(topics.kv_subject(bucket, key), value, None)).seq

    async def request(
        self, endpoint: topics.Endpoint[Req, Resp], message: Req, *, key: str | None = None
    ) -> Resp:
        """Call an endpoint; raises RemoteError with the peer's code (503 when nobody answers in time).

        With a `key` (a tenant) and a partitioned endpoint, the request goes to the replica that owns the
        key's partition, or to any replica when nobody owns it right now.
        """
        data = codec.encode(message)
        reply: Msg | None = None
        if key is not None and endpoint.partitions:
            with contextlib.suppress(nats.errors.NoRespondersError):
                reply = await self._replies.request(endpoint.partition_subject(key), data)
        try:
            if reply is None:
                reply = await self._replies.request(endpoint.subject, data)
        except nats.errors.NoRespondersError:
            raise RemoteError(503, f"no {endpoint.subject} service is running") from None
        except TimeoutError:
            raise RemoteError(503, f"{endpoint.subject} did not answer in time") from None
        if reply.headers and topics.HEADER_ERROR_CODE in reply.headers:
            code = int(reply.headers.get(topics.HEADER_ERROR_CODE) or 500)
            raise RemoteError(code, reply.headers.get(topics.HEADER_ERROR, ""))
        return codec.decode(endpoint.response, reply.data)

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
        inbox = self.nc.new_inbox()
        sub = await self.nc.subscribe(inbox)
        ids: set[str] = set()
        try:
            await self.nc.publish(topics.service_ping_subject(service), b"", reply=inbox)
            with contextlib.suppress(TimeoutError):
                while count is None or len(ids) < count:
                    reply = await sub.next_msg(timeout=_PING_SILENCE_S)
                    if reply.data:  # not a no-responders status
                        ids.add(_ping_decoder.decode(reply.data).id)
        finally:
            await sub.unsubscribe()
        return ids

    # -- dead letters ------------------------------------------------------------------------------
    async def dead_letter(
        self,
        origin: str,
        subject: str,
        data: bytes,
        reason: str,
        *,
        headers: Mapping[str, str] | None = None,
        deliveries: int = 1,
        stream_seq: int = 0,
        msg_id: str | None = None,
    ) -> None:
        """Keep a message that could not be handled in the DLQ, with the reason (once per `msg_id`)."""
        letter = DeadLetter(
            origin=origin,
            subject=subject,
            reason=reason,
            at=datetime.now(UTC),
            data=data,
            headers=dict(headers or {}),
            deliveries=deliveries,
            stream_seq=stream_seq,
        )
        ack = await self.publish(topics.DLQ.subject(origin), letter, msg_id=msg_id)
        if not ack.duplicate:
            self.metrics.dead_letters.labels(origin).inc()

    # -- consume -------------------------------------------------------------------------------------
    async def consume(
        self,
        consumer: Consumer[M],
        handler: Handler[M],
        *,
        on_dead_letter: DeadLetterHook | None = None,
    ) -> None:
        """Pull from a durable consumer and run `handler` on each message until stop() or cancellation.

        `on_dead_letter(data, reason, subject)` runs after a message went to the DLQ, so a service can fail
        the task it belonged to when that task is known.
        """

        def dispatch(group: asyncio.TaskGroup, pull: StandingPull, in_flight: _InFlight) -> _Dispatch:
            def each(msg: Msg) -> None:
                group.create_task(self._handle(consumer, handler, msg, pull, in_flight, on_dead_letter))

            return each

        await self._consume(consumer, dispatch)

    async def consume_batches(
        self,
        consumer: Consumer[M],
        handler: BatchHandler[M],
        *,
        on_dead_letter: DeadLetterHook | None = None,
    ) -> None:
        """As consume(), but `handler` gets every message that arrived together (one task per burst, not
        per message) and answers what became of each: None (ack) or the exception it would have raised,
        settled by the same table."""
        loop = asyncio.get_running_loop()

        def dispatch(group: asyncio.TaskGroup, pull: StandingPull, in_flight: _InFlight) -> _Dispatch:
            burst: list[Msg] = []

            def handle_burst() -> None:
                msgs = burst[:]
                burst.clear()
                group.create_task(
                    self._handle_burst(consumer, handler, msgs, pull, in_flight, on_dead_letter)
                )

            def each(msg: Msg) -> None:
                # The subscription hands over every message it has in one go, then yields: they form a burst.
                if not burst:
                    loop.call_soon(handle_burst)
                burst.append(msg)

            return each

        await self._consume(consumer, dispatch)

    async def _consume(
        self,
        consumer: Consumer[M],
        dispatch: Callable[[asyncio.TaskGroup, StandingPull, _InFlight], _Dispatch],
    ) -> None:
        settings = self.settings
        window_size = consumer.window or settings.concurrency
        config = ConsumerConfig(
            durable_name=consumer.durable,
            name=consumer.durable,
            filter_subject=consumer.filter_subject,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=settings.ack_wait_s,
            max_ack_pending=max(settings.max_ack_pending, window_size),
            # The bus counts deliveries itself and dead-letters the last one, so the server never drops one.
            max_deliver=-1,
        )
        await self.js.add_consumer(consumer.stream, config)
        in_flight: _InFlight = {}
        window = PullWindow(
            capacity=window_size,
            refill=max(1, min(settings.fetch_batch, window_size) // 4),
            batch=settings.fetch_batch,
        )
        async with asyncio.TaskGroup() as outer:
            # Outside the handlers' group, so it keeps their messages alive until the last one settles.
            keeper = outer.create_task(self._keep_alive(in_flight))
            try:
                async with asyncio.TaskGroup() as group:
                    pull: StandingPull
                    handle: _Dispatch

                    def on_message(msg: Msg) -> None:
                        if pull.draining:
                            # Sent before the server heard that this process stops: another worker takes it.
                            group.create_task(self._hand_back(msg, pull))
                            return
                        handle(msg)

                    async def recreate() -> None:
                        log.warning("%s: consumer deleted; creating it again", consumer.durable)
                        await self.js.add_consumer(consumer.stream, config)

                    pull = StandingPull(
                        self.nc, consumer.stream, consumer.durable, window, on_message, on_deleted=recreate
                    )
                    handle = dispatch(group, pull, in_flight)
                    await pull.start()
                    try:
                        await pull.run(self._stopping)
                    except BaseException:
                        await pull.close()
                        raise
            finally:
                keeper.cancel()

    async def _hand_back(self, msg: Msg, pull: StandingPull) -> None:
        try:
            with contextlib.suppress(Exception):
                await msg.nak()
        finally:
            pull.settled()
            self._counted(pull.durable, "handed_back").inc()

    async def _keep_alive(self, in_flight: _InFlight) -> None:
        # A handler's message stays unacknowledged until it settles; however long the handler takes (and
        # however busy the loop is), the server hears that it is in progress at least four times per ack
        # wait, so it is never redelivered to a second worker while the first is still on it. Only
        # messages held longer than a tick cost anything: a fast handler is never touched.
        tick = self.settings.ack_wait_s / 4
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(tick)
            due = loop.time() - tick
            for msg, since in list(in_flight.values()):
                if since <= due:
                    with contextlib.suppress(Exception):
                        await msg.in_progress()

    async def _sleep_unless_stopping(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    def _delivery(self, msg: Msg) -> Delivery:
        attempt, stream_seq = delivered_and_sequence(msg.reply)
        return Delivery(
            subject=msg.subject,
            headers=msg.headers or {},
            attempt=attempt,
            stream_seq=stream_seq,
            size=len(msg.data),
            _msg=msg,
        )

    async def _handle(
        self,
        consumer: Consumer[M],
        handler: Handler[M],
        msg: Msg,
        pull: StandingPull,
        in_flight: _InFlight,
        on_dead_letter: DeadLetterHook | None,
    ) -> None:
        started = time.perf_counter()
        in_flight[id(msg)] = (msg, asyncio.get_running_loop().time())
        outcome = "ack"
        try:
            delivery = self._delivery(msg)
            logs.bind(trace_id=tracing.trace_id(delivery.traceparent), subject=msg.subject)
            message = await self._decoded(consumer, msg, delivery, on_dead_letter)
            if message is _UNDECODABLE:
                outcome = "reject"
                return
            failure: Exception | None = None
            try:
                await handler(message, delivery)
            except Exception as exc:
                failure = exc
            outcome = await self._settle(consumer, msg, delivery, failure, on_dead_letter)
        except asyncio.CancelledError:
            outcome = await self._handed_back_at_cancel(msg)
            raise
        except Exception:
            # The connection went away while settling: the server redelivers after ack_wait.
            outcome = "unsettled"
            log.exception("%s: could not settle %s", consumer.durable, msg.subject)
        finally:
            del in_flight[id(msg)]
            pull.settled()
            self._counted(consumer.durable, outcome).inc()
            self._timed(consumer.durable).observe(time.perf_counter() - started)

    async def _handle_burst(
        self,
        consumer: Consumer[M],
        handler: BatchHandler[M],
        msgs: list[Msg],
        pull: StandingPull,
        in_flight: _InFlight,
        on_dead_letter: DeadLetterHook | None,
    ) -> None:
        started = time.perf_counter()
        now = asyncio.get_running_loop().time()
        for msg in msgs:
            in_flight[id(msg)] = (msg, now)
        outcomes: dict[int, str] = {}
        try:
            items: list[tuple[M, Delivery]] = []
            for msg in msgs:
                delivery = self._delivery(msg)
                message = await self._decoded(consumer, msg, delivery, on_dead_letter)
                if message is _UNDECODABLE:
                    outcomes[id(msg)] = "reject"
                else:
                    items.append((message, delivery))
            failures = await handler(items)
            for (_, delivery), failure in zip(items, failures, strict=True):
                msg = delivery._msg
                try:
                    outcomes[id(msg)] = await self._settle(consumer, msg, delivery, failure, on_dead_letter)
                except Exception:
                    outcomes[id(msg)] = "unsettled"
                    log.exception("%s: could not settle %s", consumer.durable, msg.subject)
        except asyncio.CancelledError:
            for msg in msgs:
                if id(msg) not in outcomes:
                    outcomes[id(msg)] = await self._handed_back_at_cancel(msg)
            raise
        finally:
            took = time.perf_counter() - started
            timed = self._timed(consumer.durable)
            for msg in msgs:
                del in_flight[id(msg)]
                pull.settled()
                self._counted(consumer.durable, outcomes.get(id(msg), "unsettled")).inc()
                timed.observe(took)

    async def _decoded(
        self, consumer: Consumer[M], msg: Msg, delivery: Delivery, on_dead_letter: DeadLetterHook | None
    ) -> Any:
        """The message's content, or _UNDECODABLE once it went to the DLQ."""
        try:
            decode = codec.decode_strict if consumer.strict else codec.decode
            return decode(consumer.type, msg.data)
        except Exception as exc:
            # Whatever the decoder raises, the same bytes would fail again: never redeliver them.
            why = exc if isinstance(exc, codec.DecodeError) else repr(exc)
            await self._to_dlq(consumer, msg, delivery, f"undecodable: {why}", on_dead_letter)
            return _UNDECODABLE

    async def _handed_back_at_cancel(self, msg: Msg) -> str:
        # The service is stopping and its drain deadline passed: hand the message back at once, so another
        # worker (or this one after a restart) takes it without waiting for the ack wait. The pull was
        # drained or dropped before the handlers were cancelled, so it never comes back here.
        with contextlib.suppress(Exception):
            await msg.nak()
        return "handed_back"

    async def _settle(
        self,
        consumer: Consumer[Any],
        msg: Msg,
        delivery: Delivery,
        failure: Exception | None,
        on_dead_letter: DeadLetterHook | None,
    ) -> str:
        """Ack, nak or dead-letter a handled message by what its handler raised (the module's table)."""
        attempt = delivery.attempt
        match failure:
            case None:
                await msg.ack()
                return "ack"
            case Retry():
                reason = f"still retrying after {attempt} deliveries: {failure}"
                return await self._later(
                    consumer, msg, delivery, failure.delay, reason, on_dead_letter, "retry"
                )
            case Reject():
                hook = on_dead_letter if failure.notify else None
                await self._to_dlq(consumer, msg, delivery, f"rejected: {failure.reason}", hook)
                return "reject"
            case _ if isinstance(failure, _UNAVAILABLE):
                # NATS (or a stream's leader) could not be reached: the message is not at fault, so this
                # does not count towards max_deliver; it waits, backing off, as long as a Retry would.
                log.warning("%s: NATS unavailable on %s: %r", consumer.durable, msg.subject, failure)
                delay = min(0.25 * 2 ** min(attempt - 1, 8), _MAX_UNAVAILABLE_BACKOFF_S)
                reason = f"NATS unavailable for {attempt} deliveries, last: {failure!r}"
                return await self._later(
                    consumer, msg, delivery, delay, reason, on_dead_letter, "unavailable"
                )
        if attempt >= self.settings.max_deliver:
            reason = f"failed {attempt} times, last: {failure!r}"
            log.error("%s: giving up on %s: %r", consumer.durable, msg.subject, failure)
            await self._to_dlq(consumer, msg, delivery, reason, on_dead_letter)
            return "dead_letter"
        log.error("%s: handler failed on %s", consumer.durable, msg.subject, exc_info=failure)
        await msg.nak(delay=min(0.5 * 2 ** (attempt - 1), _MAX_BACKOFF_S))
        return "error"

    async def _later(
        self,
        consumer: Consumer[Any],
        msg: Msg,
        delivery: Delivery,
        delay: float,
        reason: str,
        on_dead_letter: DeadLetterHook | None,
        outcome: str,
    ) -> str:
        """Hand the message back for `delay` seconds, or dead-letter it after max_retries deliveries."""
        if delivery.attempt >= self.settings.max_retries:
            await self._to_dlq(consumer, msg, delivery, reason, on_dead_letter)
            return "dead_letter"
        await msg.nak(delay=delay)
        return outcome

    def _counted(self, durable: str, outcome: str) -> Any:
        # labels() takes a lock and builds a key on every call; a consumer asks for the same few children.
        child = self._message_counters.get((durable, outcome))
        if child is None:
            child = self._message_counters[durable, outcome] = self.metrics.messages.labels(durable, outcome)
        return child

    def _timed(self, durable: str) -> Any:
        child = self._handler_timers.get(durable)
        if child is None:
            child = self._handler_timers[durable] = self.metrics.handler_seconds.labels(durable)
        return child

    async def _to_dlq(
        self,
        consumer: Consumer[Any],
        msg: Msg,
        delivery: Delivery,
        reason: str,
        on_dead_letter: DeadLetterHook | None,
    ) -> None:
        data, kept_reason = msg.data, reason
        if consumer.scrub is not None:
            # Bytes that are not UTF-8 are read one char per byte, so what the scrub leaves is kept exactly.
            encoding = "utf-8" if _is_utf8(msg.data) else "latin-1"
            data = consumer.scrub(msg.data.decode(encoding)).encode(encoding, errors="replace")
            kept_reason = consumer.scrub(reason)
        log.warning("%s: dead letter from %s: %s", consumer.durable, msg.subject, kept_reason)
        await self.dead_letter(
            consumer.origin,
            msg.subject,
            data,
            kept_reason,
            headers=delivery.headers,
            deliveries=delivery.attempt,
            stream_seq=delivery.stream_seq,
            msg_id=f"{consumer.durable}.{delivery.stream_seq}",
        )
        if on_dead_letter is not None:
            try:
                await on_dead_letter(msg.data, reason, msg.subject)
            except Exception:
                if delivery.attempt < self.settings.max_retries:
                    # The sender's task must still end (NATS was unreachable, say): the next delivery takes
                    # the same road again (its letter is stored once) and runs the hook again.
                    log.warning("%s: dead-letter hook failed; retrying", consumer.durable, exc_info=True)
                    await msg.nak(delay=_DEAD_LETTER_RETRY_S)
                    return
                log.exception("%s: dead-letter hook failed for good", consumer.durable)
        await msg.term()

    # -- serve ---------------------------------------------------------------------------------------
    def service_id(self, service: str) -> str | None:
        """The micro service id this bus serves `service` under (what its ping answers), once serving."""
        return self._service_ids.get(service)

    async def serve(
        self,
        service: str,
        version: str,
        endpoints: list[tuple[topics.Endpoint[Any, Any], Callable[[Any], Awaitable[Any]]]],
    ) -> None:
        """Answer requests on each endpoint (queue group = service name) until stop() or cancellation."""
        async with asyncio.TaskGroup() as group:
            svc = await add_service(
                self.nc, ServiceConfig(name=service, version=version, queue_group=service)
            )
            self._service_ids[service] = svc.id
            try:
                for endpoint, handler in endpoints:
                    await svc.add_endpoint(
                        name=endpoint.name,
                        subject=endpoint.subject,
                        handler=self._answerer(group, endpoint, handler),
                    )
                await self._stopping.wait()
            finally:
                await svc.stop()

    async def serve_partitions(
        self,
        service: str,
        endpoints: list[tuple[topics.Endpoint[Any, Any], Callable[[Any], Awaitable[Any]]]],
        owned: Callable[[], Awaitable[set[int]]],
    ) -> None:
        """Answer the subjects of the partitions `owned()` names (asked again every second) until stop().

        Answers exactly as serve() does; the queue group `<service>-p` lets two replicas share a partition
        for the moment ownership changes hands.
        """
        subs: dict[int, list[Subscription]] = {}
        async with asyncio.TaskGroup() as group:
            try:
                while not self._stopping.is_set():
                    try:
                        wanted = await owned()
                    except Exception as exc:
                        log.warning("%s: could not tell which partitions are mine: %r", service, exc)
                        wanted = set(subs)
                    for partition in sorted(set(subs) - wanted):
                        for sub in subs.pop(partition):
                            await sub.unsubscribe()
                    for partition in sorted(wanted - set(subs)):
                        subs[partition] = [
                            await self.nc.subscribe(
                                endpoint.subject_of_partition(partition),
                                queue=f"{service}-p",
                                cb=self._partition_answerer(group, endpoint, handler),
                            )
                            for endpoint, handler in endpoints
                            if partition < endpoint.partitions
                        ]
                    await self._sleep_unless_stopping(_PARTITION_CHECK_S)
            finally:
                for partition_subs in subs.values():
                    for sub in partition_subs:
                        with contextlib.suppress(Exception):
                            await sub.unsubscribe()

    def _partition_answerer(
        self,
        group: asyncio.TaskGroup,
        endpoint: topics.Endpoint[Req, Resp],
        handler: Callable[[Req], Awaitable[Resp]],
    ) -> Callable[[Msg], Awaitable[None]]:
        async def on_message(msg: Msg) -> None:
            group.create_task(self._answer(endpoint, handler, Request(msg)))

        return on_message

    def _answerer(
        self,
        group: asyncio.TaskGroup,
        endpoint: topics.Endpoint[Req, Resp],
        handler: Callable[[Req], Awaitable[Resp]],
    ) -> Callable[[Request], Awaitable[None]]:
        # Each request runs in its own task, so one slow answer does not hold up the subscription.
        async def on_request(request: Request) -> None:
            group.create_task(self._answer(endpoint, handler, request))

        return on_request

    async def _answer(
        self,
        endpoint: topics.Endpoint[Req, Resp],
        handler: Callable[[Req], Awaitable[Resp]],
        request: Request,
    ) -> None:
        code = "200"
        try:
            try:
                message = codec.decode(endpoint.request, request.data)
                answer = await handler(message)
            except codec.DecodeError as exc:
                code = "400"
                await request.respond_error(code, f"invalid request: {exc}")
            except Reject as exc:
                code = "400"
                await request.respond_error(code, exc.reason)
            except NotFound as exc:
                code = "404"
                await request.respond_error(code, str(exc))
            except Retry as exc:
                code = "503"
                await request.respond_error(code, str(exc))
            except Exception as exc:
                code = "500"
                log.exception("%s failed", endpoint.subject)
                await request.respond_error(code, f"internal error: {exc!r}")
            else:
                await request.respond(codec.encode(answer))
        except Exception:
            log.exception("%s: could not answer", endpoint.subject)
        finally:
            self.metrics.requests.labels(endpoint.name, code).inc()
