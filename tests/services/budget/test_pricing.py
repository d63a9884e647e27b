"""The price table, windows and alert thresholds: the small pure pieces of the budget."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from maestro import pricing
from maestro.pricing import Price, PricingError
from maestro.settings import Settings
from proto.v1 import Usage
from proto.v1.ids import MAX_MICRO_USD
from services.budget import alerts, windows


def test_prices_are_usd_per_million_tokens_rounded_up_to_a_micro_usd() -> None:
    table = pricing.parse("offline=0:0, gpt-4o=2.5:10,local=none", Price(3_000_000, 15_000_000))
    assert table.price("gpt-4o") == Price(2_500_000, 10_000_000)
    assert table.cost(Usage(model="gpt-4o", input_tokens=1000, output_tokens=100)) == 3500
    assert table.cost(Usage(model="gpt-4o", input_tokens=1)) == 3  # 2.5 rounds up
    assert table.price("offline") == Price(0, 0) and Price(0, 0).free
    assert table.price("local") is None and table.cost(Usage(model="local", input_tokens=5)) is None
    assert table.cost(Usage(model="local")) == 0  # nothing used, nothing owed
    assert table.cost(Usage(model="unknown", input_tokens=1000, output_tokens=100)) == 4500


def test_a_star_entry_prices_or_refuses_every_unlisted_model() -> None:
    assert pricing.parse("*=none,m=1:1", Price(1, 1)).price("other") is None
    assert pricing.parse("*=1:2", Price(1, 1)).price("other") == Price(1_000_000, 2_000_000)


def test_the_defaults_come_from_the_settings() -> None:
    table = pricing.from_settings(Settings(pricing="x=1:1"))
    assert table.cost(Usage(model="offline", input_tokens=10_000, output_tokens=1_000)) == 45_000


@pytest.mark.parametrize(
    "text",
    [
        "m",
        "m=1",
        "m=a:b",
        "=1:1",
        "m=-1:1",
        "m=1e400:1",
        "m=1:1e9999999999",
        "m=1000000001:0",
        "a b=1:1",
        "m" * 129 + "=1:1",
    ],
)
def test_a_malformed_entry_is_named(text: str) -> None:
    with pytest.raises(PricingError, match="MAESTRO_PRICING"):
        pricing.parse(text, Price(1, 1))


def test_the_dearest_price_is_a_billion_usd_per_million_tokens() -> None:
    assert pricing.parse("m=1000000000:0.5", Price(1, 1)).price("m") == Price(MAX_MICRO_USD, 500_000)


def ts(*parts: int) -> float:
    return datetime(*parts, tzinfo=UTC).timestamp()  # type: ignore[arg-type]


def test_windows_follow_the_utc_calendar() -> None:
    day = windows.span("daily", ts(2024, 12, 31, 23, 59, 59))
    assert (day.id, day.start, day.end) == ("2024-12-31", ts(2024, 12, 31), ts(2025, 1, 1))
    month = windows.span("monthly", ts(2024, 12, 31, 23))
    assert (month.id, month.start, month.end) == ("2024-12", ts(2024, 12, 1), ts(2025, 1, 1))
    assert windows.span("monthly", ts(2024, 2, 29)).end == ts(2024, 3, 1)
    assert windows.span("total", ts(2030, 1, 1)).id == "total"
    assert windows.ends_at("daily", "2025-03-14") == datetime(2025, 3, 15, tzinfo=UTC)
    assert windows.ends_at("total", "total") is None


def test_thresholds_are_crossed_once_each() -> None:
    assert alerts.crossed(499, 1000, 0) == []
    assert alerts.crossed(500, 1000, 0) == [50]
    assert alerts.crossed(1000, 1000, 50) == [80, 100]
    assert alerts.crossed(2000, 1000, 100) == []
    assert alerts.crossed(1, 0, 0) == [50, 80, 100]
