"""Which budget replica serves which partition of the tenants: every live replica agrees without talking.

Each replica asks the budget service who is alive (the micro-service ping) and serves the partitions
owner() gives it. Replicas that briefly disagree (one started or died a moment ago) serve a partition
twice, or not at all: twice is only slower, since every ledger write is a compare-and-set, and not at all
sends the tenant's requests to the public subject, which every replica answers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

Ping = Callable[[], Awaitable[set[str]]]
"""The ids of the replicas alive right now."""


def owner(partition: int, replicas: Iterable[str]) -> str:
    """The replica that serves a partition: the replicas in sorted order take the partitions in turn.

    Raises ValueError when there is no replica.
    """
    ordered = sorted(replicas)
    if not ordered:
        raise ValueError("no replica to own a partition")
    return ordered[partition % len(ordered)]


def owned_by(me: str, replicas: Iterable[str], partitions: int) -> set[int]:
    """The partitions `me` serves among these replicas; none when `me` is not (yet) among them."""
    ordered = sorted(set(replicas))
    if me not in ordered:
        return set()
    return {p for p in range(partitions) if owner(p, ordered) == me}


def ownership(me: Callable[[], str | None], ping: Ping, partitions: int) -> Callable[[], Awaitable[set[int]]]:
    """What a replica owns now: `me()` is its id (None until it serves), `ping()` the live replicas."""

    async def owned() -> set[int]:
        my_id = me()
        if my_id is None:
            return set()
        return owned_by(my_id, await ping(), partitions)

    return owned
