"""The start of a range a reader asks for: a time with its zone or a span; 24 h by default, 7 days at most."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from maestro.since import DEFAULT, LONGEST, parse_since

NOW = datetime(2026, 12, 3, 7, 30, tzinfo=UTC)


def test_no_since_or_a_blank_one_is_the_last_24_hours() -> None:
    assert DEFAULT == timedelta(hours=24)
    assert parse_since(None, NOW) == NOW - timedelta(hours=24)
    assert parse_since("", NOW) == NOW - timedelta(hours=24)
    assert parse_since("  ", NOW) == NOW - timedelta(hours=24)


@pytest.mark.parametrize(
    ("text", "ago"),
    [
        ("30m", timedelta(minutes=30)),
        ("1h", timedelta(hours=1)),
        ("36h", timedelta(hours=36)),
        ("7d", timedelta(days=7)),
        ("0m", timedelta(0)),
    ],
)
def test_a_span_reaches_that_long_before_now(text: str, ago: timedelta) -> None:
    assert parse_since(text, NOW) == NOW - ago


@pytest.mark.parametrize(
    ("text", "at"),
    [
        ("2026-12-03T07:00:00Z", datetime(2026, 12, 3, 7, 0, tzinfo=UTC)),
        ("2026-12-03T07:00:00+00:00", datetime(2026, 12, 3, 7, 0, tzinfo=UTC)),
        ("2026-12-03T08:00:00+01:00", datetime(2026, 12, 3, 7, 0, tzinfo=UTC)),
        # A `+` a client did not escape in the query string arrives as a space.
        ("2026-12-03T08:00:00 01:00", datetime(2026, 12, 3, 7, 0, tzinfo=UTC)),
        ("2026-11-26T07:30:00Z", NOW - LONGEST),
    ],
)
def test_a_time_with_a_zone_is_that_time_in_utc(text: str, at: datetime) -> None:
    start = parse_since(text, NOW)

    assert start == at
    assert start.utcoffset() == timedelta(0)


def test_the_start_comes_back_in_utc_whatever_zone_now_is_in() -> None:
    now = NOW.astimezone(timezone(timedelta(hours=-5)))

    assert parse_since("1h", now).tzinfo == UTC
    assert parse_since("1h", now) == NOW - timedelta(hours=1)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("8d", "more than 7 days ago"),
        ("10081m", "more than 7 days ago"),
        ("2026-11-26T07:29:59Z", "more than 7 days ago"),
        ("2026-12-03T07:30:01Z", "in the future"),
        ("2026-12-03T07:00:00", "has no zone"),
        ("yesterday", "neither an ISO 8601 time"),
        ("1w", "neither an ISO 8601 time"),
        ("-1h", "neither an ISO 8601 time"),
        ("1.5h", "neither an ISO 8601 time"),
    ],
)
def test_a_since_too_far_back_in_the_future_or_unreadable_is_refused_with_why(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says) as refused:
        parse_since(text, NOW)

    assert text in str(refused.value)
