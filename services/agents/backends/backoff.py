"""How long a model call waits before it is tried again: the server's Retry-After when it gave one, else a
jittered exponential back-off. Pure (the random source and the clock are passed in)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

RETRIED_STATUSES = frozenset({408, 429})
"""Client errors that say "try again later"; every 5xx does too."""


def retried(status: int) -> bool:
    """Whether an HTTP status from a model server is worth another try (408, 429, any 5xx)."""
    return status in RETRIED_STATUSES or 500 <= status <= 599


def retry_after_s(value: str | None, now: datetime) -> float | None:
    """The wait a Retry-After header asks for, in seconds (a number of seconds or an HTTP date, at `now`);
    None when there is none or it does not parse (never negative)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - now).total_seconds()
    return max(0.0, seconds) if seconds == seconds else None  # NaN: no usable answer


@dataclass(frozen=True)
class Backoff:
    """The waits between tries: `base_s` doubled each try up to `cap_s`, each drawn between half of it and all
    of it (jitter, so that callers turned away together do not all come back together)."""

    base_s: float = 0.5
    cap_s: float = 30.0

    def wait_s(self, tries: int, retry_after: float | None, rng: random.Random) -> float:
        """The wait after `tries` failed tries (1 after the first); at least `retry_after` when the server
        gave one, plus up to a tenth of it, again for jitter."""
        if retry_after is not None:
            return retry_after + rng.uniform(0.0, retry_after / 10)
        ceiling = min(self.cap_s, self.base_s * 2 ** (tries - 1))
        return rng.uniform(ceiling / 2, ceiling)
