"""The one call every model backend answers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from proto.v1 import Role, Usage


class UnservedModel(ValueError):
    """A task asked for a model this backend does not run."""


@dataclass(frozen=True)
class Completion:
    """A backend's answer: the text and what producing it consumed."""

    text: str
    usage: Usage


class Backend(Protocol):
    """Something that turns a role's prompt into text with one of the models it serves, reporting usage."""

    def serves(self, model: str | None) -> bool:
        """Whether `model` (None: the default) is one this backend runs."""
        ...

    async def complete(self, role: Role, prompt: str, model: str | None) -> Completion:
        """The completion of `prompt` for `role` with `model` (None: the backend's default); its usage names
        the model that ran. Raises UnservedModel for a model it does not serve."""
        ...
