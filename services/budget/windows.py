"""Budget windows aligned to the UTC calendar: which window an instant falls in, and when it ends."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from proto.v1 import Window

WINDOWS: tuple[Window, ...] = ("daily", "monthly", "total")


@dataclass(frozen=True)
class Span:
    """One window: its id (`2025-01-02`, `2025-01`, `total`) and its bounds in epoch seconds."""

    kind: Window
    id: str
    start: float
    end: float
    """Epoch seconds when the next window begins; infinity for the total window."""


def span(kind: Window, now: float) -> Span:
    """The window of `kind` that holds the instant `now` (epoch seconds)."""
    at = datetime.fromtimestamp(now, UTC)
    match kind:
        case "daily":
            start = at.replace(hour=0, minute=0, second=0, microsecond=0)
            end = datetime.fromordinal(start.toordinal() + 1).replace(tzinfo=UTC)
            return Span(kind, start.strftime("%Y-%m-%d"), start.timestamp(), end.timestamp())
        case "monthly":
            start = at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
            year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
            end = start.replace(year=year, month=month)
            return Span(kind, start.strftime("%Y-%m"), start.timestamp(), end.timestamp())
        case "total":
            return Span(kind, "total", 0.0, float("inf"))


def ends_at(kind: Window, window_id: str) -> datetime | None:
    """When the window `window_id` of `kind` ends (UTC), or None for the total window."""
    match kind:
        case "daily":
            start = datetime.strptime(window_id, "%Y-%m-%d").replace(tzinfo=UTC)
        case "monthly":
            start = datetime.strptime(window_id, "%Y-%m").replace(tzinfo=UTC)
        case "total":
            return None
    return datetime.fromtimestamp(span(kind, start.timestamp()).end, UTC)
