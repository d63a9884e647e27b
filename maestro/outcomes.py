"""What becomes of each message a consumer delivers: the one place that acks, naks, terms or dead-letters.

| handler                          | JetStream consumer                          | request/reply          |
|----------------------------------|---------------------------------------------|------------------------|
| returns                          | ack                                         | reply with the answer  |
| raises Retry(delay)              | nak(delay)                                  | error 503              |
| raises Reject, or does not decode| term + DeadLetter to the DLQ                | error 400              |
| raises NotFound                  | (as anything else)                          | error 404              |
| raises anything else             | nak with backoff until max_deliver, then DLQ| error 500              |

Handlers never settle a message themselves: they return or raise, and Outcomes settles by this table (the
request/reply column is maestro/calls.py's). Each outcome is counted per durable in `maestro_messages_total`.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any, TypeVar

from nats.aio.msg import Msg

from maestro import codec
from maestro.deliveries import Consumer, DeadLetterHook, Delivery
from maestro.errors import Reject, Retry
from maestro.metrics import Metrics
from maestro.settings import Settings
from maestro.streams import Streams
from maestro.unavailable import UNAVAILABLE

log = logging.getLogger(__name__)

M = TypeVar("M")

_MAX_UNAVAILABLE_BACKOFF_S = 5.0
_DEAD_LETTER_RETRY_S = 1.0
_MAX_BACKOFF_S = 30.0

UNDECODABLE: Any = object()
"""What `Outcomes.decoded` answers for a message that did not decode (and went to the DLQ)."""


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


class Outcomes:
    """Settles delivered messages by what their handlers did, dead-letters what cannot be handled, counts."""

    def __init__(self, settings: Settings, metrics: Metrics, streams: Streams) -> None:
        self._settings = settings
        self._metrics = metrics
        self._streams = streams
        self._message_counters: dict[tuple[str, str], Any] = {}
        self._handler_timers: dict[str, Any] = {}

    async def decoded(
        self, consumer: Consumer[M], msg: Msg, delivery: Delivery, on_dead_letter: DeadLetterHook | None
    ) -> Any:
        """The message's content, or UNDECODABLE once it went to the DLQ."""
        try:
            decode = codec.decode_strict if consumer.strict else codec.decode
            return decode(consumer.type, msg.data)
        except Exception as exc:
            # Whatever the decoder raises, the same bytes would fail again: never redeliver them.
            why = exc if isinstance(exc, codec.DecodeError) else repr(exc)
            await self._to_dlq(consumer, msg, delivery, f"undecodable: {why}", on_dead_letter)
            return UNDECODABLE

    async def handed_back_at_cancel(self, msg: Msg) -> str:
        """Nak a message whose handler was cancelled; the outcome "handed_back"."""
        # The service is stopping and its drain deadline passed: hand the message back at once, so another
        # worker (or this one after a restart) takes it without waiting for the ack wait. The pull was
        # drained or dropped before the handlers were cancelled, so it never comes back here.
        with contextlib.suppress(Exception):
            await msg.nak()
        return "handed_back"

    async def settle(
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
            case _ if isinstance(failure, UNAVAILABLE):
                # NATS (or a stream's leader) could not be reached: the message is not at fault, so this
                # does not count towards max_deliver; it waits, backing off, as long as a Retry would.
                log.warning("%s: NATS unavailable on %s: %r", consumer.durable, msg.subject, failure)
                delay = min(0.25 * 2 ** min(attempt - 1, 8), _MAX_UNAVAILABLE_BACKOFF_S)
                reason = f"NATS unavailable for {attempt} deliveries, last: {failure!r}"
                return await self._later(
                    consumer, msg, delivery, delay, reason, on_dead_letter, "unavailable"
                )
        if attempt >= self._settings.max_deliver:
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
        if delivery.attempt >= self._settings.max_retries:
            await self._to_dlq(consumer, msg, delivery, reason, on_dead_letter)
            return "dead_letter"
        await msg.nak(delay=delay)
        return outcome

    def counted(self, durable: str, outcome: str) -> Any:
        """The counter of one consumer's messages that had one outcome."""
        # labels() takes a lock and builds a key on every call; a consumer asks for the same few children.
        child = self._message_counters.get((durable, outcome))
        if child is None:
            child = self._message_counters[durable, outcome] = self._metrics.messages.labels(durable, outcome)
        return child

    def timed(self, durable: str) -> Any:
        """The histogram of the time one consumer's handlers took."""
        child = self._handler_timers.get(durable)
        if child is None:
            child = self._handler_timers[durable] = self._metrics.handler_seconds.labels(durable)
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
        await self._streams.dead_letter(
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
                if delivery.attempt < self._settings.max_retries:
                    # The sender's task must still end (NATS was unreachable, say): the next delivery takes
                    # the same road again (its letter is stored once) and runs the hook again.
                    log.warning("%s: dead-letter hook failed; retrying", consumer.durable, exc_info=True)
                    await msg.nak(delay=_DEAD_LETTER_RETRY_S)
                    return
                log.exception("%s: dead-letter hook failed for good", consumer.durable)
        await msg.term()
