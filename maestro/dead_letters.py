"""The dead-letter queue as its readers see it: letters newest first, one by its sequence, a replay.

A replay publishes a letter's original bytes to its original subject with its original headers, except
for a fresh Nats-Msg-Id (the original's would be dropped by JetStream's dedupe while still in the window),
then deletes the letter, so replaying it again cannot publish it twice. The replay's own id is one per
letter, so a replay interrupted between the publish and the delete and run again is deduplicated. What the
replayed message then does is up to its consumer: the ids and claims make a request idempotent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from nats.js import JetStreamContext
from nats.js.api import RawStreamMsg
from nats.js.errors import NotFoundError

from maestro import codec, topics
from maestro.errors import MaestroError
from proto.v1 import DeadLetter


class NoSuchLetter(MaestroError):
    """No dead letter has that sequence (never did, or it was replayed)."""


class NotReplayable(MaestroError):
    """The message at that sequence is not a dead letter (someone published it there): it has no origin."""


@dataclass(frozen=True)
class Stored:
    """A dead letter and its sequence in the DLQ stream, which names it for `show` and `replay`."""

    seq: int
    letter: DeadLetter
    readable: bool = True
    """False for a message on a DLQ subject that is not a DeadLetter: shown, never replayed."""


def _stored(raw: RawStreamMsg) -> Stored:
    seq = raw.seq or 0
    try:
        return Stored(seq, codec.decode(DeadLetter, raw.data or b""))
    except codec.DecodeError as exc:
        # Anyone may publish on a DLQ subject; what is not a letter is still listed, as what it is.
        origin = (raw.subject or "").rpartition(".")[2]
        letter = DeadLetter(
            origin=origin,
            subject=raw.subject or "",
            reason=f"not a dead letter: {exc}",
            at=raw.time or datetime.now(UTC),
            data=raw.data or b"",
        )
        return Stored(seq, letter, readable=False)


async def latest(js: JetStreamContext, *, origin: str | None = None, limit: int | None = 20) -> list[Stored]:
    """The newest letters first, at most `limit` (None: all), from `origin` only when given."""
    state = (await js.stream_info(topics.STREAM_DLQ)).state
    wanted = topics.DLQ.subject(origin) if origin is not None else None
    found: list[Stored] = []
    # Walked back one sequence at a time: a CLI reads a few of the newest, and replayed letters leave gaps.
    for seq in range(state.last_seq, max(state.first_seq, 1) - 1, -1):
        if limit is not None and len(found) >= limit:
            break
        try:
            raw = await js.get_msg(topics.STREAM_DLQ, seq)
        except NotFoundError:
            continue
        if wanted is None or raw.subject == wanted:
            found.append(_stored(raw))
    return found


async def read(js: JetStreamContext, seq: int) -> Stored:
    """The letter at `seq`; raises NoSuchLetter."""
    try:
        return _stored(await js.get_msg(topics.STREAM_DLQ, seq))
    except NotFoundError:
        raise NoSuchLetter(f"no dead letter {seq}") from None


async def replay(js: JetStreamContext, stored: Stored) -> None:
    """Publish the letter's message again where it came from, then delete the letter.

    Raises NotReplayable for what is not a letter, and what the publish raises (the letter is then kept),
    e.g. when no stream takes its subject now.
    """
    if not stored.readable:
        raise NotReplayable(f"{stored.seq} is not a dead letter: nothing to replay")
    letter = stored.letter
    headers = {k: v for k, v in letter.headers.items() if k.lower() != topics.HEADER_MSG_ID.lower()}
    headers[topics.HEADER_MSG_ID] = topics.replay_msg_id(stored.seq)
    await js.publish(letter.subject, letter.data, headers=headers)
    try:
        await js.delete_msg(topics.STREAM_DLQ, stored.seq)
    except NotFoundError:
        pass  # another replay of the same letter deleted it first; its publish was deduplicated
