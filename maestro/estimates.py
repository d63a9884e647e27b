"""What a task is expected to cost before it runs: the one estimate the guard holds and a workflow's
escrow adds up, priced with the table the budget charges with (maestro/pricing.py), and the one way tokens
are counted where no model server counts them. Pure, no I/O.

The estimate is the most a task's model calls may consume (the agents hold them to it, and each call's
`max_tokens` is MAESTRO_ESTIMATE_OUTPUT_TOKENS): a role makes one call, and one repair round when its answer
is invalid. The repair round reads everything the first call read, the first answer and a note on what was
wrong, and writes another answer. So for input I (the request's text plus INSTRUCTION_TOKENS for the role's
instruction) and output O: input 2*I + O + REPAIR_TOKENS, output 2*O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from maestro import pricing
from maestro.pricing import PER_MILLION, Price, PricedSettings, PriceTable
from maestro.settings import assignments
from proto.v1 import TaskRequest
from proto.v1.ids import MAX_MICRO_USD, is_human

BYTES_PER_TOKEN = 4
MODEL_CALLS = 2
"""The model calls a task may make: its answer, and one repair round when the answer is invalid."""
INSTRUCTION_TOKENS = 1024
"""What a role adds to the request's text in each call: its standing instruction, its answer's JSON Schema
and the framing (4 KiB)."""
REPAIR_TOKENS = 256
"""The note a repair round adds: what was wrong with the first answer."""


def tokens_of(chars: int) -> int:
    """The tokens `chars` characters are counted as: one per BYTES_PER_TOKEN, rounded up."""
    return -(-chars // BYTES_PER_TOKEN)


def count_tokens(text: str) -> int:
    """The tokens a text is counted as where no model server counted them."""
    return tokens_of(len(text))


class Offer(PricedSettings, Protocol):
    """What a deployment offers a task: the models its agents serve, what their tokens cost, and the
    output assumed before a task runs (Settings has all of it)."""

    @property
    def estimate_output_tokens(self) -> int: ...
    @property
    def models(self) -> tuple[str, ...]: ...
    @property
    def role_models(self) -> tuple[str, ...]: ...


def _default_table() -> PriceTable:
    return PriceTable(unlisted=Price(3 * PER_MILLION, 15 * PER_MILLION))


@dataclass(frozen=True)
class Prices:
    """What an estimate is priced with and the models served, as Settings has them (Prices.of)."""

    table: PriceTable = field(default_factory=_default_table)
    """The price of each model (MAESTRO_PRICING); by default 3 and 15 USD per million tokens for all."""
    estimate_output_tokens: int = 1024
    models: tuple[str, ...] = ()
    """The models the agents serve, the default first; empty when judging offline (any model, none set)."""
    role_models: Mapping[str, str] = field(default_factory=dict)
    """The model a role's task runs on when it names none (MAESTRO_ROLE_MODELS); other roles: the default."""

    @classmethod
    def of(cls, offer: Offer) -> Prices:
        """The prices and models of anything that has them (Settings); raises PricingError."""
        return cls(
            pricing.from_settings(offer),
            offer.estimate_output_tokens,
            offer.models,
            assignments("MAESTRO_ROLE_MODELS", offer.role_models),
        )

    def model_for(self, role: str, model: str | None) -> str:
        """The model a task of `role` asking for `model` runs on: its own, else its role's, else the first
        served ("" when none is: judged offline, at the price of unlisted models)."""
        if model is not None:
            return model
        return self.role_models.get(role) or (self.models[0] if self.models else "")


DEFAULT_PRICES = Prices()


@dataclass(frozen=True)
class Estimate:
    """What a task is expected to consume before it runs."""

    input_tokens: int
    output_tokens: int
    micro_usd: int

    @property
    def tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens


def text_chars(request: TaskRequest) -> int:
    """The characters a model would read: prompt, context files (path and content) and commands."""
    return (
        len(request.prompt)
        + sum(len(f.path) + len(f.content) for f in request.context)
        + sum(len(c) for c in request.commands)
    )


def estimate(request: TaskRequest, prices: Prices = DEFAULT_PRICES) -> Estimate:
    """The most a request's model calls may consume (the module's docstring), at the price of the model it
    runs on (nothing for a model without a price: the budget refuses to hold for it; nothing for a person's
    task: no model runs)."""
    if is_human(request.role):
        return Estimate(input_tokens=0, output_tokens=0, micro_usd=0)
    return of_text(text_chars(request), prices.model_for(request.role, request.model), prices)


def of_text(chars: int, model: str, prices: Prices = DEFAULT_PRICES) -> Estimate:
    """The most a task whose model reads `chars` characters may consume, at `model`'s price."""
    read = tokens_of(chars) + INSTRUCTION_TOKENS
    written = prices.estimate_output_tokens
    input_tokens = MODEL_CALLS * read + (MODEL_CALLS - 1) * (written + REPAIR_TOKENS)
    output_tokens = MODEL_CALLS * written
    price = prices.table.price(model)
    return Estimate(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        # Capped at the bound on money, so the estimate stays a value every message can carry: a task that
        # expensive is refused by any budget (none can be larger).
        micro_usd=min(price.cost(input_tokens, output_tokens), MAX_MICRO_USD) if price else 0,
    )


def estimate_micro_usd(request: TaskRequest, prices: Prices = DEFAULT_PRICES) -> int:
    """The expected cost of a request in micro-USD."""
    return estimate(request, prices).micro_usd
