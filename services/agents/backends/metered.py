"""A backend that adds up what one task's calls consumed, so a task that fails after some calls still pays
for them."""

from __future__ import annotations

from collections.abc import Sequence

from proto.v1 import Role, Usage
from services.agents.backends.base import Backend, Completion, Schema, Turn


class Metered:
    """Wraps a backend for one task: `spent` is the sum of the usage of every completion it returned (the
    model of the last one; `none` before any)."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.spent = Usage(model="none")

    def serves(self, model: str | None) -> bool:
        """Whether the wrapped backend runs `model`."""
        return self.backend.serves(model)

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
        """The wrapped backend's completion; its usage is added to `spent`."""
        completion = await self.backend.complete(
            role, prompt, model, system=system, schema=schema, history=history
        )
        used = completion.usage
        self.spent = Usage(
            model=used.model,
            input_tokens=self.spent.input_tokens + used.input_tokens,
            output_tokens=self.spent.output_tokens + used.output_tokens,
        )
        return completion
