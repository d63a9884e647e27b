"""A tenant's budget history from a range of its budget events: the last sample of each step, every alert."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from maestro import codec
from maestro.budget_history import POINTS, history_of, thinned
from maestro.stream_range import Range, Stored
from proto.v1 import SpendSampled, ThresholdCrossed

SINCE = datetime(2026, 12, 3, tzinfo=UTC)


def _at(seconds: float, spent: int) -> SpendSampled:
    return SpendSampled(
        tenant="acme",
        at=SINCE + timedelta(seconds=seconds),
        window_id="total",
        spent_micro_usd=spent,
        held_micro_usd=0,
        limit_micro_usd=100,
        remaining_micro_usd=100 - spent,
    )


def test_a_step_keeps_its_last_sample_and_a_step_without_one_has_none() -> None:
    samples = [_at(5, 1), _at(1, 0), _at(9.9, 2), _at(25, 3), _at(31, 4)]

    assert [s.spent_micro_usd for s in thinned(samples, SINCE, 10.0)] == [2, 3, 4]
    assert [s.spent_micro_usd for s in thinned(samples, SINCE, 0.0)] == [0, 1, 2, 3, 4]


def test_a_range_gives_thinned_samples_every_alert_in_order_and_skips_what_does_not_decode() -> None:
    crossed = ThresholdCrossed(
        tenant="acme",
        at=SINCE + timedelta(seconds=7),
        window_id="total",
        scope="tenant",
        percent=50,
        spent=50,
        limit=100,
    )
    stored = [_at(1, 10), _at(2, 20), crossed, _at(3600, 60)]
    messages = [Stored(n, event.at, codec.encode(event)) for n, event in enumerate(stored, 1)]
    messages.insert(2, Stored(9, SINCE, b'{"kind": "budget.from_the_future"}'))
    now = SINCE + timedelta(hours=24)

    history = history_of("acme", SINCE, now, Range(messages, partial=True))

    assert history.step_s == 24 * 3600 / POINTS == 360.0
    assert [s.spent_micro_usd for s in history.samples] == [20, 60]
    assert history.alerts == [crossed]
    assert (history.tenant, history.since, history.partial) == ("acme", SINCE, True)
