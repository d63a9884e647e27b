"""The one call every model backend answers, and how it fails."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeGuard

from proto.v1 import Role, Usage

Schema = Mapping[str, Any]
"""A JSON Schema (as msgspec.json.schema writes it) that an answer must be a JSON document of."""


class UnservedModel(ValueError):
    """A task asked for a model this backend does not run."""


class ModelFailed(Exception):
    """The model server did not answer: refused for good (`retryable` False: a 4xx other than 408/429, a
    key it rejects) or still failing after the backend's own retries (`retryable` True: the task's retry
    policy may run the attempt again later). The text never holds the API key."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class OverBudget(Exception):
    """A model call would take a task past what the guard held for it (its estimate): not made, and not
    retried (the same task would run past it again)."""


@dataclass(frozen=True)
class Turn:
    """One earlier message of a conversation: what the model answered, or what it was told after."""

    speaker: Literal["user", "assistant"]
    text: str


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

    async def complete(
        self,
        role: Role,
        prompt: str,
        model: str | None,
        *,
        system: str = "",
        schema: Schema | None = None,
        history: Sequence[Turn] = (),
    ) -> Completion:
        """The completion of `prompt` for `role` with `model` (None: the backend's default); its usage names
        the model that ran. `system` is the role's standing instruction; `schema`, when given, asks for a JSON
        document of that schema (the caller validates it: a backend may not enforce it); `history` holds the
        turns between the first prompt and this one (`prompt` is then the newest user message, e.g. a
        request to repair an invalid answer). Raises UnservedModel for a model it does not serve, ModelFailed
        when the server does not answer."""
        ...


class BoundedBackend(Backend, Protocol):
    """A backend that bounds each answer's length: `max_tokens` caps the tokens the model may write (None:
    the backend's own cap)."""

    bounds_output: Literal[True]

    async def complete(
        self,
        role: Role,
        prompt: str,
        model: str | None,
        *,
        system: str = "",
        schema: Schema | None = None,
        history: Sequence[Turn] = (),
        max_tokens: int | None = None,
    ) -> Completion:
        """As Backend.complete, writing at most `max_tokens` tokens."""
        ...


def summed(earlier: Usage, later: Usage) -> Usage:
    """What two calls consumed together, named for the later one's model."""
    return Usage(
        model=later.model,
        input_tokens=earlier.input_tokens + later.input_tokens,
        output_tokens=earlier.output_tokens + later.output_tokens,
    )


def bounds_output(backend: Backend) -> TypeGuard[BoundedBackend]:
    """Whether `backend` takes a `max_tokens` for each call (it says so with `bounds_output = True`)."""
    return getattr(backend, "bounds_output", False) is True
