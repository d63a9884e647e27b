"""The messages one model call sends, and the tokens they are counted as before it is made. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from maestro.estimates import count_tokens
from services.agents.backends.base import Turn

MESSAGE_TOKENS = 4
"""What a chat server adds around each message (its role and separators), counted with the message."""


@dataclass(frozen=True)
class Message:
    """One message of a chat: who speaks and what they say."""

    role: Literal["system", "user", "assistant"]
    content: str


def messages(prompt: str, *, system: str = "", history: Sequence[Turn] = ()) -> list[Message]:
    """The messages of a call, in order: the standing instruction (when there is one), the turns of the
    conversation so far (a repair round's start with the first prompt and the answer to repair), then
    `prompt` as the newest user message."""
    sent = [Message("system", system)] if system else []
    sent += [Message(turn.speaker, turn.text) for turn in history]
    sent.append(Message("user", prompt))
    return sent


def prompt_tokens(sent: Sequence[Message]) -> int:
    """The input tokens of a call that sends `sent`, as counted where no model server counts them."""
    return sum(count_tokens(m.content) + MESSAGE_TOKENS for m in sent)
