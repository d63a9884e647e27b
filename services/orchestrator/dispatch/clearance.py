"""Which handed-over tasks the dispatcher may purge from the waiting stream, one subject at a time.

Handing a task over ends with its deletion from the waiting stream. Deleting each one is a request per task;
a purge of a subject below a sequence deletes every message of that subject before it in one request. On one
waiting subject (a role, a priority, a tenant) tasks go in order, so after a burst of hand-overs one purge
clears them all: everything below the lowest task of the subject still waiting or on its way, up to the
highest one handed over. Pure: the dispatcher does the purging.
"""

from __future__ import annotations

import heapq


class Clearance:
    """Per waiting subject: the tasks still open (waiting, or being handed over), the highest handed over,
    and how far the subject was purged already."""

    def __init__(self) -> None:
        self._open: dict[str, list[int]] = {}
        self._closed: set[int] = set()
        self._handed: dict[str, int] = {}
        self._purged: dict[str, int] = {}

    def opened(self, subject: str, seq: int) -> None:
        """A task stored at `seq` on `subject` waits: nothing from it on may be purged until it is closed."""
        heapq.heappush(self._open.setdefault(subject, []), seq)

    def closed(self, subject: str, seq: int, *, handed: bool) -> None:
        """The task at `seq` no longer waits: handed over (then it may be purged), or gone otherwise (deleted
        on its own)."""
        self._closed.add(seq)
        if handed:
            self._handed[subject] = max(self._handed.get(subject, 0), seq)

    def bound(self, subject: str) -> int | None:
        """Purge `subject` below this sequence now, or None when that would delete nothing new."""
        heap = self._open.get(subject, [])
        while heap and heap[0] in self._closed:
            self._closed.discard(heapq.heappop(heap))
        handed = self._handed.get(subject)
        if handed is None:
            return None
        bound = min(heap[0], handed + 1) if heap else handed + 1
        return bound if bound > self._purged.get(subject, 0) else None

    def purged(self, subject: str, bound: int) -> None:
        """`subject` was purged below `bound`; a subject with nothing left open is forgotten."""
        self._purged[subject] = max(self._purged.get(subject, 0), bound)
        if not self._open.get(subject) and self._handed.get(subject, 0) < self._purged[subject]:
            self._open.pop(subject, None)
            self._handed.pop(subject, None)
            self._purged.pop(subject, None)
