"""The one call every model backend answers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from proto.v1 import Role, Usage


@dataclass(frozen=True)
class Completion:
    """A backend's answer: the text and what producing it consumed."""

    text: str
    usage: Usage


class Backend(Protocol):
    """Something that turns a role's prompt into text, reporting token usage."""

    async def complete(self, role: Role, prompt: str, model: str | None) -> Completion:
        """The completion of `prompt` for `role` with `model` (None: the backend's default)."""
        ...
