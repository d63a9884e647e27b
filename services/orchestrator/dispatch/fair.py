"""The fair queue: which waiting task of a role goes to its agents next (pure, no I/O, no clock read).

A pick honours, in this order:

1. priority: among the tasks the limits let go, the highest priority goes first;
2. fairness across the tenants waiting at that (role, priority): smooth weighted round robin (nginx's),
   where a tenant whose queue there empties loses its credit, so idle time banks nothing;
3. FIFO within a tenant and priority: smallest stream sequence first;
4. each tenant's limits (running tasks in all, running tasks per role, a token bucket of starts): a task
   a limit holds back is skipped, never dropped, and other tenants' tasks (of lower priority too) go instead.

Every time is a `now` passed in (monotonic seconds). A tenant's Share is asked for again on every call,
because the policy bundle may be reloaded at any moment.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

# A bucket whose refill lands a hair under one token (float rounding of `now - stamp`) still has its token
# at the time wake_at() named.
_TOKEN_SLACK = 1e-9


@dataclass(frozen=True)
class Share:
    """How one tenant shares the agents: its weight and its limits (from the policy bundle's `scheduling`).

    Raises ValueError when a value is out of range.
    """

    weight: int = 1
    """Its share of the picks against the other tenants waiting at the same role and priority (>= 1)."""
    max_running: int | None = None
    """At most this many of its tasks handed out and not yet finished, across all roles (None: no limit)."""
    max_running_per_role: Mapping[str, int] = field(default_factory=dict)
    """The same per role: {role: n}; a role not named has no limit of its own."""
    starts_per_s: float | None = None
    """How fast its token bucket refills, in hand-outs per second across roles (None: no rate limit)."""
    burst: int = 1
    """How many tokens its bucket holds (>= 1); full at first, but see FairQueue.empty_buckets_at."""

    def __post_init__(self) -> None:
        if self.weight < 1:
            raise ValueError(f"weight must be at least 1, not {self.weight}")
        if self.burst < 1:
            raise ValueError(f"burst must be at least 1, not {self.burst}")
        if self.max_running is not None and self.max_running < 0:
            raise ValueError(f"max_running must not be negative, not {self.max_running}")
        if any(n < 0 for n in self.max_running_per_role.values()):
            raise ValueError(f"max_running_per_role must not be negative: {dict(self.max_running_per_role)}")
        if self.starts_per_s is not None and self.starts_per_s <= 0:
            raise ValueError(f"starts_per_s must be positive, not {self.starts_per_s}")
        # a copy the caller cannot change behind the frozen dataclass's back
        object.__setattr__(self, "max_running_per_role", MappingProxyType(dict(self.max_running_per_role)))


@dataclass(frozen=True, slots=True)
class Waiting:
    """One task waiting for its role's agents: where its assignment is stored (`seq`) and what orders it."""

    seq: int
    role: str
    priority: int
    tenant: str
    since: float
    """When it started waiting (monotonic seconds), for the wait-time metric."""


@dataclass(slots=True)
class _Bucket:
    """A tenant's token bucket as of `stamp`: `tokens` then (refill is computed, not stored, until a take)."""

    tokens: float
    stamp: float


def _tokens_at(bucket: _Bucket, share: Share, now: float) -> float:
    """The tokens a rate-limited tenant's bucket holds at `now`."""
    assert share.starts_per_s is not None
    elapsed = max(0.0, now - bucket.stamp)
    return min(float(share.burst), bucket.tokens + elapsed * share.starts_per_s)


class FairQueue:
    """The tasks waiting per role, and per tenant what it runs and its round-robin credit and rate tokens."""

    def __init__(self, share_of: Callable[[str], Share]) -> None:
        self._share_of = share_of
        self._unused = _Bucket(0.0, float("-inf"))
        """The bucket of a tenant this queue has handed nothing out for yet: full, unless told otherwise."""
        self._tasks: dict[int, Waiting] = {}
        # (role, priority, tenant) -> the waiting seqs, ascending
        self._queues: dict[tuple[str, int, str], deque[int]] = {}
        # role -> priority -> the tenants with work there
        self._tenants_at: dict[str, dict[int, set[str]]] = {}
        # (role, priority) -> tenant -> its smooth-weighted-round-robin credit (only tenants with work)
        self._credit: dict[tuple[str, int], dict[str, int]] = {}
        self._running: dict[tuple[str, str], int] = {}
        self._running_total: dict[str, int] = {}
        self._buckets: dict[str, _Bucket] = {}

    def empty_buckets_at(self, when: float) -> None:
        """Take every tenant's token bucket to have been empty at `when` (it refills from then on): a
        dispatcher that takes over from one that stopped, last handing out at `when`, cannot know how many
        tokens were left, and must not add a second burst to the one its predecessor may just have given."""
        self._unused = _Bucket(0.0, when)

    def add(self, task: Waiting) -> bool:
        """Queue a task; False (and nothing changes) when a task with that seq is already waiting."""
        if task.seq in self._tasks:
            return False
        self._tasks[task.seq] = task
        key = (task.role, task.priority, task.tenant)
        queue = self._queues.get(key)
        if queue is None:
            self._queues[key] = deque((task.seq,))
            self._tenants_at.setdefault(task.role, {}).setdefault(task.priority, set()).add(task.tenant)
        elif queue[-1] < task.seq:
            queue.append(task.seq)
        else:
            bisect.insort(queue, task.seq)
        return True

    def remove(self, seq: int) -> Waiting | None:
        """Take a waiting task out (it was cancelled, say); None when it is not waiting."""
        task = self._tasks.pop(seq, None)
        if task is None:
            return None
        key = (task.role, task.priority, task.tenant)
        queue = self._queues[key]
        if queue[0] == seq:
            queue.popleft()
        else:
            queue.remove(seq)
        if not queue:
            self._forget_queue(key)
        return task

    def next(self, role: str, now: float) -> Waiting | None:
        """The task of `role` to hand out now, taken out of the queue and counted as running for its tenant
        (and taking one of its rate tokens); None when nothing of that role may go now."""
        by_priority = self._tenants_at.get(role)
        if not by_priority:
            return None
        shares: dict[str, Share] = {}
        may_start: dict[str, bool] = {}
        for priority in sorted(by_priority, reverse=True):
            eligible: list[str] = []
            for tenant in by_priority[priority]:
                allowed = may_start.get(tenant)
                if allowed is None:
                    share = shares[tenant] = self._share_of(tenant)
                    allowed = may_start[tenant] = self._held_by(role, tenant, share, now) is None
                if allowed:
                    eligible.append(tenant)
            if eligible:
                tenant = self._pick(role, priority, eligible, shares)
                return self._hand_out((role, priority, tenant), shares[tenant], now)
        return None

    def finished(self, role: str, tenant: str) -> None:
        """One of the tenant's handed-out tasks of that role ended (a count never goes below 0)."""
        key = (role, tenant)
        count = self._running.get(key, 0)
        if count <= 0:
            return
        if count == 1:
            del self._running[key]
        else:
            self._running[key] = count - 1
        total = self._running_total[tenant] - 1
        if total:
            self._running_total[tenant] = total
        else:
            del self._running_total[tenant]

    def set_running(self, counts: Mapping[tuple[str, str], int]) -> None:
        """Replace every (role, tenant) running count by these (a resync after a restart); absent keys: 0."""
        self._set({key: n for key, n in counts.items() if n > 0})

    def lower_running(self, counts: Mapping[tuple[str, str], int]) -> None:
        """Lower every (role, tenant) running count to at most these (absent keys: 0); none is raised."""
        self._set({key: low for key, n in self._running.items() if (low := min(n, counts.get(key, 0))) > 0})

    def _set(self, running: dict[tuple[str, str], int]) -> None:
        self._running = running
        totals: dict[str, int] = {}
        for (_, tenant), n in self._running.items():
            totals[tenant] = totals.get(tenant, 0) + n
        self._running_total = totals

    def running_in(self, role: str) -> int:
        """How many tasks of `role`, of every tenant, are handed out and not finished."""
        return sum(count for (r, _), count in self._running.items() if r == role)

    def running(self, role: str, tenant: str) -> int:
        """How many of the tenant's tasks of that role are handed out and not yet finished."""
        return self._running.get((role, tenant), 0)

    def wake_at(self, role: str, now: float) -> float | None:
        """The earliest time a tenant with tasks of `role` that only its rate limit holds back gets a token;
        None when no rate limit holds anything of that role back (running limits free up through
        finished(), not with time)."""
        earliest: float | None = None
        for tenant in self._tenants_of(role):
            share = self._share_of(tenant)
            if share.starts_per_s is None or self._held_by_running(role, tenant, share) is not None:
                continue
            tokens = _tokens_at(self._buckets.get(tenant, self._unused), share, now)
            if tokens >= 1.0 - _TOKEN_SLACK:
                continue
            at = now + (1.0 - tokens) / share.starts_per_s
            if earliest is None or at < earliest:
                earliest = at
        return earliest

    def why(self, seq: int, now: float) -> str | None:
        """One line saying why a waiting task has not gone yet; None when it is not waiting."""
        task = self._tasks.get(seq)
        if task is None:
            return None
        held = self._held_by(task.role, task.tenant, self._share_of(task.tenant), now)
        if held is not None:
            return held
        ahead = bisect.bisect_left(self._queues[(task.role, task.priority, task.tenant)], seq)
        for priority, tenants in self._tenants_at[task.role].items():
            if priority > task.priority:
                ahead += sum(len(self._queues[(task.role, priority, t)]) for t in tenants)
        if ahead:
            return f"{ahead} tasks of higher or equal priority go before it"
        return f"waiting for a free {task.role} agent"

    def roles(self) -> set[str]:
        """The roles with waiting tasks."""
        return set(self._tenants_at)

    def waiting(self) -> int:
        """How many tasks wait, in all."""
        return len(self._tasks)

    def depth(self) -> dict[tuple[str, int, str], tuple[int, float]]:
        """Per (role, priority, tenant) with waiting tasks: how many wait and the smallest `since` among them
        (for metrics; it reads every waiting task)."""
        tasks = self._tasks
        return {
            key: (len(queue), min(tasks[seq].since for seq in queue)) for key, queue in self._queues.items()
        }

    def _tenants_of(self, role: str) -> set[str]:
        """The tenants with waiting tasks of `role`, at any priority."""
        tenants: set[str] = set()
        for at_priority in self._tenants_at.get(role, {}).values():
            tenants |= at_priority
        return tenants

    def _held_by_running(self, role: str, tenant: str, share: Share) -> str | None:
        """Which running limit holds the tenant's tasks of `role` back, in words; None when none does."""
        if share.max_running is not None and self._running_total.get(tenant, 0) >= share.max_running:
            return f"tenant {tenant} is at its limit of {share.max_running} running tasks"
        per_role = share.max_running_per_role.get(role)
        if per_role is not None and self._running.get((role, tenant), 0) >= per_role:
            return f"tenant {tenant} is at its limit of {per_role} running {role} tasks"
        return None

    def _held_by(self, role: str, tenant: str, share: Share, now: float) -> str | None:
        """Which limit holds the tenant's tasks of `role` back at `now`, in words; None when none does."""
        held = self._held_by_running(role, tenant, share)
        if held is not None:
            return held
        if (
            share.starts_per_s is not None
            and _tokens_at(self._buckets.get(tenant, self._unused), share, now) < 1.0 - _TOKEN_SLACK
        ):
            return f"tenant {tenant} is at its rate limit of {share.starts_per_s:g} starts/s"
        return None

    def _pick(self, role: str, priority: int, eligible: list[str], shares: Mapping[str, Share]) -> str:
        """Smooth weighted round robin among the eligible tenants at (role, priority): each gains its weight,
        the richest goes (ties: the oldest head task) and pays the sum of the weights."""
        if len(eligible) == 1:
            # alone it gains and pays the same: its credit stays where it was
            return eligible[0]
        credit = self._credit.setdefault((role, priority), {})
        total = 0
        best: tuple[int, int, str] | None = None
        for tenant in eligible:
            weight = shares[tenant].weight
            total += weight
            gained = credit[tenant] = credit.get(tenant, 0) + weight
            candidate = (gained, -self._queues[(role, priority, tenant)][0], tenant)
            if best is None or candidate > best:
                best = candidate
        assert best is not None
        credit[best[2]] -= total
        return best[2]

    def _hand_out(self, key: tuple[str, int, str], share: Share, now: float) -> Waiting:
        """Take the head task of that queue out, count it as running and take a rate token for it."""
        role, _, tenant = key
        queue = self._queues[key]
        task = self._tasks.pop(queue.popleft())
        if not queue:
            self._forget_queue(key)
        self._running[(role, tenant)] = self._running.get((role, tenant), 0) + 1
        self._running_total[tenant] = self._running_total.get(tenant, 0) + 1
        if share.starts_per_s is not None:
            bucket = self._buckets.get(tenant, self._unused)
            tokens = _tokens_at(bucket, share, now) - 1.0
            self._buckets[tenant] = _Bucket(max(0.0, tokens), max(bucket.stamp, now))
        else:
            self._buckets.pop(tenant, None)
        return task

    def _forget_queue(self, key: tuple[str, int, str]) -> None:
        """Drop an emptied queue: its tenant leaves that (role, priority) and loses its credit there."""
        role, priority, tenant = key
        del self._queues[key]
        by_priority = self._tenants_at[role]
        tenants = by_priority[priority]
        tenants.discard(tenant)
        if not tenants:
            del by_priority[priority]
            if not by_priority:
                del self._tenants_at[role]
        credit = self._credit.get((role, priority))
        if credit is not None:
            credit.pop(tenant, None)
            if not credit:
                del self._credit[(role, priority)]
