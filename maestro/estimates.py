"""What a task is expected to cost before it runs: the one estimate the guard holds and a workflow's
escrow adds up, priced with the table the budget charges with (maestro/pricing.py). Pure, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from maestro import pricing
from maestro.pricing import PER_MILLION, Price, PricedSettings, PriceTable
from proto.v1 import TaskRequest
from proto.v1.ids import MAX_MICRO_USD

BYTES_PER_TOKEN = 4


class Offer(PricedSettings, Protocol):
    """What a deployment offers a task: the models its agents serve, what their tokens cost, and the
    output assumed before a task runs (Settings has all of it)."""

    @property
    def estimate_output_tokens(self) -> int: ...
    @property
    def models(self) -> tuple[str, ...]: ...


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

    @classmethod
    def of(cls, offer: Offer) -> Prices:
        """The prices and models of anything that has them (Settings); raises PricingError."""
        return cls(pricing.from_settings(offer), offer.estimate_output_tokens, offer.models)


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
    """The expected usage of a request: ~4 characters per input token, plus the assumed output, at the
    price of the request's model (nothing for a model without a price: the budget refuses to hold for it)."""
    return of_text(text_chars(request), request.model or "", prices)


def of_text(chars: int, model: str, prices: Prices = DEFAULT_PRICES) -> Estimate:
    """The expected usage of a task a model reads `chars` characters for, at `model`'s price."""
    input_tokens = -(-chars // BYTES_PER_TOKEN)
    output_tokens = prices.estimate_output_tokens
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
