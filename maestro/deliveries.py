"""What a durable consumer is, what its handler is handed with each message, and the handlers' shapes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from nats.aio.msg import Msg

from maestro import topics
from maestro.pulling import delivered_and_sequence

M = TypeVar("M")


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


def delivery_of(msg: Msg) -> Delivery:
    """What a handler is told about a message a consumer delivered (read off its ack subject)."""
    attempt, stream_seq = delivered_and_sequence(msg.reply)
    return Delivery(
        subject=msg.subject,
        headers=msg.headers or {},
        attempt=attempt,
        stream_seq=stream_seq,
        size=len(msg.data),
        _msg=msg,
    )


Handler = Callable[[M, Delivery], Awaitable[None]]
BatchHandler = Callable[[list[tuple[M, Delivery]]], Awaitable[list[Exception | None]]]
"""Handles messages that arrived together; what became of each, in order: None, or what it raised."""
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
