"""Spending alerts: which of the 50, 80 and 100 percent thresholds a window has newly reached. No I/O."""

from __future__ import annotations

THRESHOLDS = (50, 80, 100)


def crossed(spent: int, limit: int, alerted: int) -> list[int]:
    """The thresholds above `alerted` (the highest already announced) that `spent` of `limit` reaches."""
    if spent <= 0:
        return []
    return [pct for pct in THRESHOLDS if pct > alerted and spent * 100 >= pct * limit]
