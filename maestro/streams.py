"""Writes to JetStream: typed messages to the streams that own their subjects, schedules, KV entries by
revision, dead letters; and core-NATS notices, which nobody stores.

Every stored write goes over the bus's own request path (maestro/replies.py) and reads JetStream's answer
itself: what js.publish does, cheaper.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

import msgspec
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import PubAck
from nats.js.errors import APIError, NoStreamResponseError

from maestro import codec, topics
from maestro.errors import WrongRevision
from maestro.metrics import Metrics
from maestro.replies import Replies
from maestro.topics import Subject
from proto.v1 import DeadLetter

M = TypeVar("M")

WRONG_LAST_SEQUENCE = (10071, 10164)
"""JetStream's "wrong last sequence" error codes: the expected-last-subject-sequence check failed."""
_NO_SUCH_MESSAGE = (10057, 10043)
"""JetStream's answers to deleting a message that is not there: "no message found" (code 500: deleted
already, or past the last one) and "sequence not found" (code 400: the last one, deleted already)."""
_NOT_FOUND = "404"


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


def _raised(error: _ApiError) -> APIError:
    """The APIError for JetStream's error answer, as nats-py raises it."""
    return APIError(code=error.code, err_code=error.err_code, description=error.description)


class _Deleted(msgspec.Struct):
    success: bool = False
    error: _ApiError | None = None


_deleted_decoder = msgspec.json.Decoder(_Deleted)


class _LastStored(msgspec.Struct):
    last_ts: datetime | None = None


class _StreamState(msgspec.Struct):
    state: _LastStored = msgspec.field(default_factory=_LastStored)
    error: _ApiError | None = None


_state_decoder = msgspec.json.Decoder(_StreamState)

_NEVER = datetime(1, 1, 1, tzinfo=UTC)
"""The time JetStream gives as the last write of a stream that was never written to."""


class _Purged(msgspec.Struct):
    purged: int = 0
    error: _ApiError | None = None


_purged_decoder = msgspec.json.Decoder(_Purged)


@dataclass(frozen=True, slots=True)
class Stored:
    """One message read back from a stream: where it was stored, its body and its headers."""

    subject: str
    data: bytes
    headers: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Relayed:
    """A message already encoded (read from another stream, not decoded), to store on `subject`; `msg_id`
    makes a resend a no-op."""

    subject: str
    data: bytes
    msg_id: str
    traceparent: str | None = None


class Streams:
    """Stores messages in streams and KV buckets, and sends notices; raises what JetStream answers."""

    def __init__(self, nc: Client, replies: Replies, metrics: Metrics) -> None:
        self._nc = nc
        self._replies = replies
        self._metrics = metrics

    async def publish(
        self,
        subject: Subject[M],
        message: M,
        *,
        msg_id: str | None = None,
        traceparent: str | None = None,
        after_seq: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> PubAck:
        """Store a message in the stream that owns `subject`; `msg_id` makes a resend a no-op; `headers` are
        stored with it.

        With `after_seq`, it is stored only if the last message on `subject` is still the one at that stream
        sequence (0: only if there is none); raises WrongRevision when another writer got there first.
        """
        sent: dict[str, str] | None = None
        if msg_id or traceparent or after_seq is not None or headers:
            sent = dict(headers or {})
            if msg_id:
                sent[topics.HEADER_MSG_ID] = msg_id
            if traceparent:
                sent[topics.HEADER_TRACEPARENT] = traceparent
            if after_seq is not None:
                sent[topics.HEADER_EXPECTED_LAST_SUBJECT_SEQ] = str(after_seq)
        return await self._store_after(subject.name, codec.encode(message), sent, after_seq)

    async def notify(self, subject: Subject[M], message: M) -> None:
        """Send a message to whoever listens on `subject` now (core NATS: not stored, no answer)."""
        await self._nc.publish(subject.name, codec.encode(message))

    async def schedule(
        self,
        subject: Subject[M],
        message: M,
        *,
        due: datetime,
        target: Subject[M],
        after_seq: int | None = None,
    ) -> PubAck:
        """Have the server store `message` on `target` at `due` (a JetStream message schedule, ADR-51).

        `subject` names the schedule and `target` must be in the same stream, which allows schedules;
        scheduling on `subject` again replaces what was scheduled there, and a `due` in the past comes due
        at once. With `after_seq`, only if the schedule there is still the one at that stream sequence (a
        schedule that came due is gone); raises WrongRevision otherwise.
        """
        at = due.astimezone(UTC).isoformat().replace("+00:00", "Z")
        headers = {topics.HEADER_SCHEDULE: f"@at {at}", topics.HEADER_SCHEDULE_TARGET: target.name}
        if after_seq is not None:
            headers[topics.HEADER_EXPECTED_LAST_SUBJECT_SEQ] = str(after_seq)
        return await self._store_after(subject.name, codec.encode(message), headers, after_seq)

    async def _store_after(
        self, subject: str, data: bytes, headers: dict[str, str] | None, after_seq: int | None
    ) -> PubAck:
        """_store, raising WrongRevision when the headers expected `after_seq` last on the subject and
        another writer got there first."""
        try:
            return await self._store(subject, data, headers)
        except APIError as exc:
            if after_seq is not None and exc.err_code in WRONG_LAST_SEQUENCE:
                raise WrongRevision(f"{subject} moved past sequence {after_seq}") from None
            raise

    async def compare_and_set(self, bucket: str, key: str, value: bytes, revision: int | None) -> int:
        """Write a KV entry only if it is still at `revision` (None: only if there is none); the new revision.

        Raises WrongRevision when another writer got there first.
        """
        expected = {topics.HEADER_EXPECTED_LAST_SUBJECT_SEQ: str(revision or 0)}
        try:
            ack = await self._store(topics.kv_subject(bucket, key), value, expected)
        except APIError as exc:
            if exc.err_code in WRONG_LAST_SEQUENCE:
                raise WrongRevision(f"{bucket}/{key} is no longer at revision {revision}") from None
            raise
        return ack.seq

    async def put(self, bucket: str, key: str, value: bytes) -> int:
        """Write a KV entry whatever is there (KeyValue.put over the cheaper path); its new revision."""
        return (await self._store(topics.kv_subject(bucket, key), value, None)).seq

    async def send_all(self, relays: Sequence[Relayed]) -> list[Exception | None]:
        """Send each message to be stored without asking for an answer (none comes back, so nothing says
        whether the server stored it: the caller must find out otherwise); per message, the error that kept
        it from being sent, or None."""
        sent: list[Exception | None] = []
        for relayed in relays:
            try:
                await self._nc.publish(relayed.subject, relayed.data, headers=_relay_headers(relayed))
            except Exception as exc:
                sent.append(exc)
            else:
                sent.append(None)
        return sent

    async def relay_all(self, relays: Sequence[Relayed]) -> list[PubAck | Exception]:
        """Store each message, all sent before any answer is awaited (one round trip for
        the lot); what became of each, in order: its ack, or the error that stopped it."""
        sent: list[asyncio.Future[Msg] | Exception] = []
        try:
            for relayed in relays:
                headers = _relay_headers(relayed)
                try:
                    sent.append(await self._replies.sent(relayed.subject, relayed.data, headers=headers))
                except Exception as exc:
                    sent.append(exc)
            results: list[PubAck | Exception] = []
            for reply in sent:
                try:
                    if isinstance(reply, Exception):
                        raise reply
                    results.append(_acked(await reply))
                except nats.errors.NoRespondersError:
                    results.append(NoStreamResponseError())
                except Exception as exc:
                    results.append(exc)
            return results
        finally:
            for reply in sent:
                if not isinstance(reply, Exception) and not reply.done():
                    reply.cancel()

    async def read(self, stream: str, seq: int) -> Stored | None:
        """The message stored at `seq` in `stream` (from any replica: a direct get), or None when there is
        none (never stored, or deleted)."""
        reply = await self._replies.request(
            topics.direct_get_subject(stream), msgspec.json.encode({"seq": seq})
        )
        headers = reply.headers or {}
        if topics.HEADER_STATUS in headers:
            if headers[topics.HEADER_STATUS] == _NOT_FOUND:
                return None
            raise APIError(
                code=int(headers[topics.HEADER_STATUS]),
                description=headers.get(topics.HEADER_STATUS_DESCRIPTION, ""),
            )
        return Stored(subject=headers.get(topics.HEADER_SUBJECT, ""), data=reply.data, headers=headers)

    async def delete(self, stream: str, seq: int) -> bool:
        """Delete the message stored at `seq` in `stream` (its place is not overwritten: quicker); False when
        there was none."""
        reply = await self._replies.request(
            topics.message_delete_subject(stream), msgspec.json.encode({"seq": seq, "no_erase": True})
        )
        answer = _deleted_decoder.decode(reply.data)
        if answer.error is not None:
            if answer.error.err_code in _NO_SUCH_MESSAGE:
                return False
            raise _raised(answer.error)
        return answer.success

    async def last_stored_at(self, stream: str) -> datetime | None:
        """When the last message was stored in `stream` (kept when messages are deleted or acked away), or
        None when nothing ever was."""
        reply = await self._replies.request(topics.stream_info_subject(stream), b"")
        answer = _state_decoder.decode(reply.data)
        if answer.error is not None:
            raise _raised(answer.error)
        last = answer.state.last_ts
        return None if last is None or last <= _NEVER else last

    async def purge(self, stream: str, subject: str, below: int) -> int:
        """Delete every message of `subject` in `stream` stored before sequence `below`; how many it was."""
        reply = await self._replies.request(
            topics.stream_purge_subject(stream), msgspec.json.encode({"filter": subject, "seq": below})
        )
        answer = _purged_decoder.decode(reply.data)
        if answer.error is not None:
            raise _raised(answer.error)
        return answer.purged

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
        ack = await self.publish(topics.DLQ.at(origin), letter, msg_id=msg_id)
        if not ack.duplicate:
            self._metrics.dead_letters.labels(origin).inc()

    async def _store(self, subject: str, data: bytes, headers: dict[str, str] | None) -> PubAck:
        # What js.publish does, over the bus's own cheaper request path (maestro/replies.py).
        try:
            reply = await self._replies.request(subject, data, headers=headers)
        except nats.errors.NoRespondersError:
            raise NoStreamResponseError from None
        return _acked(reply)


def _relay_headers(relayed: Relayed) -> dict[str, str]:
    headers = {topics.HEADER_MSG_ID: relayed.msg_id}
    if relayed.traceparent:
        headers[topics.HEADER_TRACEPARENT] = relayed.traceparent
    return headers


def _acked(reply: Msg) -> PubAck:
    """The ack of a store, or the error JetStream answered instead."""
    ack = _ack_decoder.decode(reply.data)
    if ack.error is not None:
        raise _raised(ack.error)
    return PubAck(stream=ack.stream, seq=ack.seq, duplicate=ack.duplicate or None)
