"""How many tasks of each role the running agents take at once, from their announcements in the
`maestro_workers` bucket (key `<role>.<worker>`, value a WorkerPresence), so the dispatcher hands over no
more than there are free slots. Pure: the dispatcher follows the bucket and says what time it is.

An announcement is refreshed well inside the bucket's TTL; one that ages out leaves no delete marker, so an
announcement older than the TTL counts as gone.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from maestro import topics
from proto.v1 import WorkerPresence

_decode = msgspec.json.Decoder(WorkerPresence).decode


@dataclass(frozen=True, slots=True)
class _Seen:
    role: str
    slots: int
    at: float


class Capacity:
    """The slots of each role's live agents, as they last announced them."""

    def __init__(self, ttl_s: float) -> None:
        self._ttl_s = ttl_s
        self._workers: dict[str, _Seen] = {}

    def offer(self, key: str, value: bytes | None, now: float) -> None:
        """An announcement (None: withdrawn) under `key`, heard at `now`; one that does not decode, or says no
        slots, counts for nothing."""
        if value is None:
            self._workers.pop(key, None)
            return
        try:
            slots = _decode(value).slots
        except (msgspec.DecodeError, msgspec.ValidationError):
            slots = 0
        self._workers[key] = _Seen(topics.role_of_worker_key(key), slots, now)

    def slots(self, role: str, now: float) -> int | None:
        """The slots of the role's agents heard from within the TTL (0: no agent serves the role); None when
        agents serve it but none said how many (then the dispatcher goes by MAESTRO_DISPATCH_AHEAD alone)."""
        live = [w for w in self._workers.values() if w.role == role and now - w.at < self._ttl_s]
        said = [w.slots for w in live if w.slots > 0]
        if not live:
            return 0
        return sum(said) if said else None
