"""A lease on one key of the leases bucket: among the replicas that run for it, at most one holds it at a
time, and while it does it runs what is led (the orchestrator's dispatcher and gauges of open tasks).

Like Kubernetes' leader election, it rests on compare-and-set and on each replica's own clock, never on
clocks agreeing between machines:

- The holder renews the lease every third of its length (an update expecting its own last revision).
- A replica that does not hold it reads the key as often. Once it has seen the same revision for a whole
  length of its own time, the holder is gone: it takes the key over with an update expecting that revision,
  so of several that try, one wins.
- A holder that has not renewed within LOSE_AT of the length since it sent its last successful renewal
  stops what it leads: by then a contender may be about to take over.
- A holder that stops lets what it leads finish (up to STOP_S), then deletes the key, so the next one takes
  over on its next read instead of after a length.
- A replica that finds the key held under its own name is that holder restarted (names are unique per
  process: MAESTRO_WORKER, a pod's name): the holder is gone, and it takes over at once.

Two replicas can still both believe they lead only if a holder's process stalls for longer than the lease
between checking the time and acting on it; what is led is built to survive that (hand-overs carry dedup
ids, and the next leader recounts what runs).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import nats.errors
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from maestro.lifetime import Lifetime

log = logging.getLogger(__name__)

LOSE_AT = 0.8
"""The share of the lease's length since its last renewal was sent after which a holder stops leading."""
STOP_S = 5.0
"""How long a holder that stops waits for what it leads to finish before it cancels it."""


@dataclass
class _Seen:
    """The revision of the key a replica that does not hold it last saw change, and when (its own clock)."""

    revision: int
    since: float


class Lease:
    """One replica's part in the lease on `key`: run(led) runs `led` while this replica holds it."""

    def __init__(
        self,
        kv: KeyValue,
        key: str,
        holder: str,
        length_s: float,
        lifetime: Lifetime,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kv = kv
        self._key = key
        self._holder = holder.encode()
        self._length_s = length_s
        self._lifetime = lifetime
        self._clock = clock
        self._revision: int | None = None
        """Ours, while we hold the lease."""
        self._renewed_at = 0.0
        """When (our clock) the last successful renewal or take-over was sent."""
        self._seen: _Seen | None = None

    @property
    def held(self) -> bool:
        """Whether this replica holds the lease now."""
        return self._revision is not None

    async def run(self, led: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run for the lease until the bus stops, running `led` while holding it (cancelled once the lease
        is lost); an error `led` raises ends run() with it."""
        tenure: asyncio.Task[None] | None = None
        try:
            while not self._lifetime.stopping:
                if self.held:
                    await self._renew()
                else:
                    await self._contend()
                if self.held and tenure is None:
                    log.info("leading as %s", self._holder.decode())
                    tenure = asyncio.create_task(led(), name=f"leading {self._key}")
                elif not self.held and tenure is not None:
                    await _ended(tenure)
                    tenure = None
                await self._tick(tenure)
        finally:
            if tenure is not None:
                if self._lifetime.stopping:
                    await asyncio.wait({tenure}, timeout=STOP_S)
                await _ended(tenure)
            await self._release()

    async def _tick(self, tenure: asyncio.Task[None] | None) -> None:
        """Wait a third of the lease (less when the renewal is due sooner); raise what the tenure raised."""
        wait = self._length_s / 3
        if tenure is None:
            await self._lifetime.sleep(wait)
            return
        stopping = asyncio.ensure_future(self._lifetime.stopped())
        try:
            await asyncio.wait({tenure, stopping}, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if tenure.done() and not tenure.cancelled() and (error := tenure.exception()) is not None:
            raise error

    async def _renew(self) -> None:
        assert self._revision is not None
        sent = self._clock()
        deadline = self._renewed_at + self._length_s * LOSE_AT
        try:
            async with asyncio.timeout(max(0.0, deadline - sent)):
                self._revision = await self._kv.update(self._key, self._holder, last=self._revision)
            self._renewed_at = sent
        except KeyWrongLastSequenceError:
            log.warning("the lease on %s was taken over: no longer leading", self._key)
            self._lose()
        except (nats.errors.Error, TimeoutError) as exc:
            if self._clock() >= deadline:
                log.warning("could not renew the lease on %s in time (%r): no longer leading", self._key, exc)
                self._lose()

    def _lose(self) -> None:
        self._revision = None
        self._seen = None

    async def _contend(self) -> None:
        now = self._clock()
        try:
            try:
                entry = await self._kv.get(self._key)
            except KeyNotFoundError:
                self._revision = await self._kv.create(self._key, self._holder)
            else:
                revision = entry.revision or 0
                if entry.value == self._holder:
                    log.info("the lease on %s is held under this replica's name: taking it over", self._key)
                    self._revision = await self._kv.update(self._key, self._holder, last=revision)
                elif self._seen is None or self._seen.revision != revision:
                    self._seen = _Seen(revision, now)
                elif now - self._seen.since >= self._length_s:
                    log.warning(
                        "the lease on %s was not renewed for %.1f s: taking it over",
                        self._key,
                        now - self._seen.since,
                    )
                    self._revision = await self._kv.update(self._key, self._holder, last=revision)
        except KeyWrongLastSequenceError:
            return  # another replica got there first
        except (nats.errors.Error, TimeoutError) as exc:
            log.warning("could not read the lease on %s (%r)", self._key, exc)
            return
        if self._revision is not None:
            self._renewed_at = now

    async def _release(self) -> None:
        """Give the lease up (delete the key if it is still ours), so the next replica need not wait."""
        if self._revision is None:
            return
        revision, self._revision = self._revision, None
        with contextlib.suppress(nats.errors.Error, TimeoutError, KeyWrongLastSequenceError):
            async with asyncio.timeout(2.0):
                await self._kv.delete(self._key, last=revision)


async def _ended(tenure: asyncio.Task[None]) -> None:
    """Cancel a tenure and wait for it to finish; what it raised on the way out is logged, not raised."""
    tenure.cancel()
    await asyncio.wait({tenure})
    if not tenure.cancelled() and (error := tenure.exception()) is not None:
        log.error("what was led failed as it stopped: %r", error)
