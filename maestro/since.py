"""The start of a range over time that a reader asks for (`since=`): an ISO 8601 time with its zone, or how
long ago (`30m`, `1h`, `7d`); the console's charts and the API's history routes read it the same way, here.

A range reaches at most LONGEST back (what the streams behind the charts keep) and never starts in the
future; without a `since` it is the last DEFAULT.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

DEFAULT = timedelta(hours=24)
"""How far back a range reaches when the reader does not say."""

LONGEST = timedelta(days=7)
"""How far back a range may reach at most."""

_AGO = re.compile(r"^(\d{1,6})([mhd])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}
# A `+` in a query string arrives as a space when the client did not escape it: `...07:00:00 01:00`.
_UNESCAPED_PLUS = re.compile(r"^(.{10,}\d) (\d\d:?\d\d)$")


def parse_since(text: str | None, now: datetime) -> datetime:
    """The start of a range given `since=text` at `now`, in UTC; None or blank means DEFAULT before `now`.

    Raises ValueError, with a text for the reader, for anything that is neither an ISO 8601 time with a zone
    nor `<n>m|h|d`, or that lies more than LONGEST before `now` or after it.
    """
    if text is None or not text.strip():
        return (now - DEFAULT).astimezone(UTC)
    text = text.strip()
    start = start_of(text, now)
    if start > now:
        raise ValueError(f"since={text} is in the future")
    if now - start > LONGEST:
        raise ValueError(
            f"since={text} is more than {LONGEST.days} days ago; ranges reach {LONGEST.days}d back at most"
        )
    return start.astimezone(UTC)


def start_of(text: str, now: datetime) -> datetime:
    """The time `text` names, an ISO 8601 time with its zone or `<n>m|h|d` before `now`, however far back
    (a listing's `since`); raises ValueError, with a text for the reader, for anything else."""
    ago = _AGO.match(text.strip())
    if ago:
        return (now - timedelta(**{_UNITS[ago.group(2)]: int(ago.group(1))})).astimezone(UTC)
    return _instant(text.strip()).astimezone(UTC)


def _instant(text: str) -> datetime:
    """The time an ISO 8601 text with a zone names; raises ValueError otherwise."""
    try:
        at = datetime.fromisoformat(_UNESCAPED_PLUS.sub(r"\1+\2", text))
    except ValueError:
        raise ValueError(
            f"since={text[:40]} is neither an ISO 8601 time (2026-12-03T07:00:00Z) "
            "nor a span ago (30m, 1h, 7d)"
        ) from None
    if at.tzinfo is None:
        raise ValueError(f"since={text[:40]} has no zone: end it with Z or an offset such as +01:00")
    return at
