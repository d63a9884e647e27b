"""The price table: what each model's tokens cost, parsed from MAESTRO_PRICING. No I/O.

Shared by the guard (it estimates a task at its model's price) and the budget (it charges usage at it).

`offline=0:0,gpt-4o=2.5:10` prices input and output tokens in USD per million; `m=none` marks a model
unpriced (a reservation for it is refused); `*=a:b` or `*=none` prices every model not listed. A price is at
most MAX_USD_PER_MILLION, so that it times a count of tokens stays a number a commit can be checked against
(settlements.py refuses a usage that costs more than the bound on money). Without a
`*` entry, unlisted models cost the default prices of the settings (3 and 15 USD per million), so a
deployment that names no prices still charges for every call.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Protocol

from proto.v1 import Usage
from proto.v1.ids import MAX_MICRO_USD, MODEL_PATTERN

PER_MILLION = 1_000_000
UNLISTED = "*"
MAX_USD_PER_MILLION = MAX_MICRO_USD // PER_MILLION
"""The dearest price a model may have: a billion USD per million tokens."""


class PricingError(ValueError):
    """MAESTRO_PRICING could not be read; the text names the entry."""


@dataclass(frozen=True)
class Price:
    """A model's price in micro-USD per million tokens (so 2.5 USD per million is 2_500_000)."""

    input: int
    output: int

    @property
    def free(self) -> bool:
        """A local model: it needs no budget."""
        return self.input == 0 and self.output == 0

    def cost(self, input_tokens: int, output_tokens: int) -> int:
        """What these tokens cost in micro-USD, rounded up (never undercharge by a fraction)."""
        return -(-(input_tokens * self.input + output_tokens * self.output) // PER_MILLION)


@dataclass(frozen=True)
class PriceTable:
    """Prices by model name; `unlisted` prices the rest (None: unlisted models are unpriced)."""

    prices: dict[str, Price | None] = field(default_factory=dict)
    unlisted: Price | None = None

    def price(self, model: str) -> Price | None:
        """The model's price, or None when it has none (a reservation for it is refused)."""
        if model in self.prices:
            return self.prices[model]
        return self.unlisted

    def cost(self, usage: Usage) -> int | None:
        """What a call's usage costs in micro-USD; None when its model has no price (and it used tokens)."""
        if usage.input_tokens == 0 and usage.output_tokens == 0:
            return 0  # a call that used nothing (a crashed role) costs nothing, priced or not
        price = self.price(usage.model)
        return None if price is None else price.cost(usage.input_tokens, usage.output_tokens)


def _usd_per_million(entry: str, text: str) -> int:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise PricingError(f"MAESTRO_PRICING: {entry!r}: {text!r} is not a number of USD") from None
    if value < 0 or not value.is_finite():
        raise PricingError(f"MAESTRO_PRICING: {entry!r}: a price must be zero or more")
    if value > MAX_USD_PER_MILLION:
        raise PricingError(
            f"MAESTRO_PRICING: {entry!r}: a price is at most {MAX_USD_PER_MILLION} USD per million"
        )
    return int((value * PER_MILLION).to_integral_value())


def parse(text: str, default: Price) -> PriceTable:
    """The table written in `text`; raises PricingError naming a malformed entry."""
    prices: dict[str, Price | None] = {}
    unlisted: Price | None = default
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        model, sep, value = entry.partition("=")
        model = model.strip()
        if not sep or not model:
            raise PricingError(f"MAESTRO_PRICING: {entry!r}: expected model=input:output or model=none")
        if model != UNLISTED and not re.match(MODEL_PATTERN, model):
            raise PricingError(f"MAESTRO_PRICING: {entry!r}: {model!r} is not a model id")
        price: Price | None
        if value.strip().lower() in ("none", "-"):
            price = None
        else:
            input_usd, colon, output_usd = value.partition(":")
            if not colon:
                raise PricingError(f"MAESTRO_PRICING: {entry!r}: expected input:output USD per million")
            price = Price(_usd_per_million(entry, input_usd), _usd_per_million(entry, output_usd))
        if model == UNLISTED:
            unlisted = price
        else:
            prices[model] = price
    return PriceTable(prices, unlisted)


class PricedSettings(Protocol):
    """The settings a price table is made of (Settings has them)."""

    @property
    def pricing(self) -> str: ...
    @property
    def price_input_micro_usd_per_token(self) -> int: ...
    @property
    def price_output_micro_usd_per_token(self) -> int: ...


def from_settings(settings: PricedSettings) -> PriceTable:
    """The table of MAESTRO_PRICING over the settings' default prices per token; raises PricingError."""
    default = Price(
        settings.price_input_micro_usd_per_token * PER_MILLION,
        settings.price_output_micro_usd_per_token * PER_MILLION,
    )
    return parse(settings.pricing, default)
