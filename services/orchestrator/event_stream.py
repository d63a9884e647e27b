"""Task events as Server-Sent Events: one task's until it ends, or every event a caller may see as it is
stored (the console's live view), each from an ordered push consumer on the events stream, no polling.

Each frame is `id:` the stream sequence, `event:` the kind and `data:` the event's JSON, so a client that
lost the stream resumes after the last id it saw (`Last-Event-ID`). A comment line goes out after
KEEPALIVE_S of silence; a stream whose client went away, or whose service is stopping, ends within LOOK_S.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Sequence

from aiohttp import web
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import ConsumerConfig, DeliverPolicy

from maestro import codec, topics
from maestro.bus import Bus
from proto.v1 import ENDING_EVENTS, TaskEvent, separate

KEEPALIVE_S = 5.0
"""How long a followed stream stays silent before a comment line."""
LOOK_S = 0.5
"""How often a silent stream looks whether its client went away or the service is stopping."""


def event_kind(event: TaskEvent) -> str:
    """An event's kind as the wire names it: `task.succeeded`."""
    return str(type(event).__struct_config__.tag)


def frame(seq: int, event: TaskEvent) -> bytes:
    """One Server-Sent Event of a stored task event."""
    return f"id: {seq}\nevent: {event_kind(event)}\ndata: ".encode() + codec.encode(event) + b"\n\n"


def _gone(request: web.Request) -> bool:
    """Whether the client closed its connection (aiohttp does not cancel the handler when it does)."""
    return request.transport is None or request.transport.is_closing()


async def stream_events(
    request: web.Request,
    bus: Bus,
    subjects: Sequence[str],
    *,
    after_seq: int | None,
    kinds: Collection[str] = (),
    until_end: bool = False,
) -> web.StreamResponse:
    """Answer `request` with the events stored on `subjects` (wildcards allowed) after stream sequence
    `after_seq` (None: only those stored from now on), of `kinds` only when some are given; `until_end`
    ends the stream after a task's ending event (one task's stream)."""
    if after_seq is None:
        # From the stream's last sequence, not DeliverPolicy.NEW: nats-py restarts an ordered consumer that
        # missed a message from its last sequence seen, which is 0 before the first one (the whole stream).
        after_seq = (await bus.js.stream_info(topics.STREAM_EVENTS)).state.last_seq
    config = ConsumerConfig(
        inactive_threshold=30.0,
        deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
        opt_start_seq=after_seq + 1,
    )
    if len(subjects) > 1:
        config.filter_subjects = list(subjects)
    sub = await bus.js.subscribe(
        subjects[0] if len(subjects) == 1 else "",
        stream=topics.STREAM_EVENTS,
        ordered_consumer=True,
        config=config,
    )
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
    try:
        await response.prepare(request)
        # Sent at once, so a client knows the stream is open before the first event (a proxy flushes too).
        await response.write(b": open\n\n")
        silent = 0.0
        while bus.lifetime.accepting and not _gone(request):
            try:
                msg = await sub.next_msg(timeout=LOOK_S)
            except NatsTimeout:
                silent += LOOK_S
                if silent >= KEEPALIVE_S:
                    silent = 0.0
                    await response.write(b": keep-alive\n\n")  # fails once the client has gone
                continue
            silent = 0.0
            seq = msg.metadata.sequence.stream
            if seq <= after_seq:
                continue  # sent again by a restarted consumer (see above): the client has it or never asked
            try:
                stored: TaskEvent = codec.decode(TaskEvent, msg.data)  # type: ignore[arg-type]
            except codec.DecodeError:
                continue
            # An acceptance stored with its verdict is sent as both, under the one stream sequence.
            for event in separate(stored):
                if not kinds or event_kind(event) in kinds:
                    await response.write(frame(seq, event))
            if until_end and isinstance(stored, ENDING_EVENTS):
                break
        await response.write_eof()
    except ConnectionResetError:
        pass  # the client went away: nothing to answer
    finally:
        with contextlib.suppress(NatsError):
            await sub.unsubscribe()
    return response
