"""A backend that adds up what one task's calls consumed, so a task that fails after some calls still pays
for them, and that keeps those calls within what the guard held for the task."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from maestro.estimates import Prices, estimate
from maestro.pricing import PER_MILLION, Price
from proto.v1 import Role, TaskRequest, Usage
from services.agents.backends.base import (
    Backend,
    Completion,
    OverBudget,
    Schema,
    Turn,
    bounds_output,
    summed,
)
from services.agents.backends.conversation import messages, prompt_tokens

MIN_ANSWER_TOKENS = 64
"""The shortest answer worth asking for: a call that cannot afford it is not made (OverBudget)."""


@dataclass(frozen=True)
class Allowance:
    """What one task's model calls may consume: the guard's estimate of the task (maestro/estimates.py, the
    one function it holds with), in tokens and at its model's price, and at most `per_call` tokens a call."""

    tokens: int
    micro_usd: int
    price: Price | None
    """The price of the task's model (None: unpriced, so only tokens bound it)."""
    per_call: int
    """The most output tokens one call may write (MAESTRO_ESTIMATE_OUTPUT_TOKENS)."""

    @classmethod
    def of(cls, request: TaskRequest, prices: Prices) -> Allowance:
        """The allowance of `request` (its model, else its role's default) under `prices`."""
        expected = estimate(request, prices)
        price = prices.table.price(prices.model_for(request.role, request.model))
        return cls(expected.tokens, expected.micro_usd, price, prices.estimate_output_tokens)

    def output_left(self, spent: Usage, reading: int) -> int:
        """The most output tokens a call that reads `reading` tokens may write after `spent` was consumed,
        so that neither the tokens nor the money of the whole task pass the allowance."""
        read = spent.input_tokens + reading
        left = min(self.per_call, self.tokens - read - spent.output_tokens)
        if self.price is not None and self.price.output > 0:
            money = self.micro_usd * PER_MILLION - read * self.price.input
            left = min(left, money // self.price.output - spent.output_tokens)
        elif self.price is not None and read * self.price.input > self.micro_usd * PER_MILLION:
            left = 0  # only input is priced, and reading this much costs more than was held
        return left


class Metered:
    """Wraps a backend for one task: `spent` is the sum of the usage of every completion it returned (the
    model of the last one; `none` before any). With an allowance, each call is bounded to what is left of it
    (`max_tokens`, for a backend that takes one), and a call that could not write even MIN_ANSWER_TOKENS is
    not made."""

    def __init__(self, backend: Backend, allowance: Allowance | None = None) -> None:
        self.backend = backend
        self.allowance = allowance
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
        """The wrapped backend's completion; its usage is added to `spent`.

        Raises OverBudget, before calling, when the call would take the task past its allowance; whatever
        the wrapped backend raises."""
        left: int | None = None
        if self.allowance is not None:
            reading = prompt_tokens(messages(prompt, system=system, history=history))
            left = self.allowance.output_left(self.spent, reading)
            if left < MIN_ANSWER_TOKENS:
                raise OverBudget(
                    f"a {role} call reading ~{reading} tokens would leave room for {max(left, 0)} tokens of "
                    f"answer (at least {MIN_ANSWER_TOKENS} needed) within what was held for the task "
                    f"({self.allowance.tokens} tokens, {self.allowance.micro_usd} micro-USD); "
                    "send a shorter prompt or context, or raise MAESTRO_ESTIMATE_OUTPUT_TOKENS"
                )
        if left is not None and bounds_output(self.backend):
            completion = await self.backend.complete(
                role, prompt, model, system=system, schema=schema, history=history, max_tokens=left
            )
        else:
            completion = await self.backend.complete(
                role, prompt, model, system=system, schema=schema, history=history
            )
        self.spent = summed(self.spent, completion.usage)
        return completion
