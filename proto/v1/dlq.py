"""Messages that could not be handled, kept with the reason."""

from __future__ import annotations

from datetime import datetime

from proto.base import Message


class DeadLetter(Message, frozen=True):
    """The original bytes of a message that failed, where it came from, and why."""

    origin: str
    subject: str
    reason: str
    at: datetime
    data: bytes = b""
    headers: dict[str, str] = {}
    deliveries: int = 1
    stream_seq: int = 0
