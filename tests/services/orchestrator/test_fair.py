"""The fair queue, no server: priority, weighted fairness across tenants, FIFO, limits, rate tokens."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable

import pytest

from services.orchestrator.dispatch.fair import FairQueue, Share, Waiting


def shares(table: dict[str, Share]) -> Callable[[str], Share]:
    """A share_of that reads `table` on every call (so a test can change it in place) with a default."""
    return lambda tenant: table.get(tenant, Share())


def task(seq: int, tenant: str = "a", priority: int = 5, role: str = "coder", since: float = 0.0) -> Waiting:
    return Waiting(seq=seq, role=role, priority=priority, tenant=tenant, since=since)


def pick_tenants(queue: FairQueue, n: int, role: str = "coder", now: float = 0.0) -> list[str]:
    picked = []
    for _ in range(n):
        got = queue.next(role, now)
        assert got is not None
        picked.append(got.tenant)
    return picked


def test_one_tenant_goes_in_seq_order() -> None:
    queue = FairQueue(shares({}))
    for seq in (3, 1, 7, 5, 2):
        assert queue.add(task(seq))
    out = [queue.next("coder", 0.0) for _ in range(5)]
    assert [t.seq for t in out if t is not None] == [1, 2, 3, 5, 7]
    assert queue.next("coder", 0.0) is None


def test_higher_priority_goes_before_a_backlog() -> None:
    queue = FairQueue(shares({}))
    for seq in range(1, 1001):
        queue.add(task(seq, priority=5))
    queue.add(task(5000, tenant="b", priority=9))
    got = queue.next("coder", 0.0)
    assert got is not None and got.seq == 5000
    got = queue.next("coder", 0.0)
    assert got is not None and got.seq == 1


def test_another_role_is_not_handed_out() -> None:
    queue = FairQueue(shares({}))
    queue.add(task(1, role="reviewer"))
    assert queue.next("coder", 0.0) is None
    got = queue.next("reviewer", 0.0)
    assert got is not None and got.seq == 1


def test_a_newcomer_does_not_wait_behind_a_backlog() -> None:
    queue = FairQueue(shares({}))
    for seq in range(1, 1001):
        queue.add(task(seq, tenant="a"))
    pick_tenants(queue, 10)
    queue.add(task(2000, tenant="b"))
    assert "b" in pick_tenants(queue, 2)


def test_weights_share_smoothly() -> None:
    queue = FairQueue(shares({"a": Share(weight=3)}))
    for seq in range(1, 401):
        queue.add(task(seq, tenant="a"))
    for seq in range(1001, 1401):
        queue.add(task(seq, tenant="b"))
    picked = pick_tenants(queue, 400)
    assert Counter(picked) == {"a": 300, "b": 100}
    assert all(picked[i : i + 4].count("a") <= 3 for i in range(len(picked) - 3))
    assert picked[:8] == ["a", "a", "b", "a", "a", "a", "b", "a"]


def test_an_idle_tenant_banks_no_credit() -> None:
    queue = FairQueue(shares({}))
    for seq in range(1, 1001):
        queue.add(task(seq, tenant="a"))
    pick_tenants(queue, 100)
    for seq in range(2001, 2201):
        queue.add(task(seq, tenant="b"))
    picked = pick_tenants(queue, 100)
    assert Counter(picked) == {"a": 50, "b": 50}
    assert all(picked[i : i + 2].count("b") == 1 for i in range(0, 100, 2))


def test_a_tenant_whose_queue_empties_loses_its_credit() -> None:
    queue = FairQueue(shares({"b": Share(weight=5)}))
    queue.add(task(100, tenant="a"))
    for seq in range(1, 51):
        queue.add(task(seq, tenant="b"))
    # a gains 1 a pick while b goes: after three picks a is owed 3
    assert pick_tenants(queue, 3) == ["b", "b", "b"]
    assert queue.remove(100) is not None
    queue.add(task(200, tenant="a"))
    # with its credit kept a would go first (4 against b's 2); afresh it has 1 against b's 2
    assert pick_tenants(queue, 2) == ["b", "a"]


def test_max_running_skips_the_tenant_and_lets_lower_priority_go() -> None:
    table = {"a": Share(max_running=1)}
    queue = FairQueue(shares(table))
    queue.add(task(1, tenant="a", priority=9))
    queue.add(task(2, tenant="a", priority=9))
    queue.add(task(3, tenant="b", priority=1))
    first = queue.next("coder", 0.0)
    assert first is not None and first.seq == 1
    held = queue.next("coder", 0.0)
    assert held is not None and held.seq == 3
    assert queue.next("coder", 0.0) is None
    assert queue.waiting() == 1
    queue.finished("coder", "a")
    again = queue.next("coder", 0.0)
    assert again is not None and again.seq == 2


def test_max_running_counts_across_roles() -> None:
    queue = FairQueue(shares({"a": Share(max_running=1)}))
    queue.add(task(1, tenant="a", role="coder"))
    queue.add(task(2, tenant="a", role="reviewer"))
    assert queue.next("coder", 0.0) is not None
    assert queue.next("reviewer", 0.0) is None
    queue.finished("coder", "a")
    got = queue.next("reviewer", 0.0)
    assert got is not None and got.seq == 2


def test_max_running_per_role_holds_only_that_role() -> None:
    queue = FairQueue(shares({"a": Share(max_running_per_role={"coder": 1})}))
    queue.add(task(1, tenant="a", role="coder"))
    queue.add(task(2, tenant="a", role="coder"))
    queue.add(task(3, tenant="a", role="reviewer"))
    queue.add(task(4, tenant="b", role="coder", priority=0))
    assert queue.next("coder", 0.0) == task(1, tenant="a", role="coder")
    assert queue.next("coder", 0.0) == task(4, tenant="b", role="coder", priority=0)
    assert queue.next("coder", 0.0) is None
    assert queue.next("reviewer", 0.0) == task(3, tenant="a", role="reviewer")
    queue.finished("coder", "a")
    assert queue.next("coder", 0.0) == task(2, tenant="a", role="coder")


def test_rate_limit_hands_out_the_burst_then_waits_for_a_token() -> None:
    queue = FairQueue(shares({"a": Share(starts_per_s=1.0, burst=2)}))
    for seq in range(1, 11):
        queue.add(task(seq))
    assert queue.wake_at("coder", 0.0) is None
    assert queue.next("coder", 0.0) is not None
    assert queue.next("coder", 0.0) is not None
    assert queue.next("coder", 0.0) is None
    assert queue.wake_at("coder", 0.0) == 1.0
    assert queue.next("coder", 0.999) is None
    assert queue.wake_at("coder", 0.5) == 1.0
    got = queue.next("coder", 1.0)
    assert got is not None and got.seq == 3
    assert queue.wake_at("coder", 1.0) == 2.0


def test_rate_tokens_never_exceed_the_burst() -> None:
    queue = FairQueue(shares({"a": Share(starts_per_s=1.0, burst=2)}))
    for seq in range(1, 11):
        queue.add(task(seq))
    pick_tenants(queue, 2)
    assert len(pick_tenants(queue, 2, now=1000.0)) == 2
    assert queue.next("coder", 1000.0) is None
    assert queue.wake_at("coder", 1000.0) == 1001.0


def test_rate_buckets_refill_from_empty_after_the_last_hand_out_of_a_predecessor() -> None:
    # A dispatcher that takes over from one that last handed out at t=9.5 cannot know how many tokens were
    # left: it starts nothing a token has not refilled since, and never gives a second burst after the first.
    queue = FairQueue(shares({"a": Share(starts_per_s=1.0, burst=3)}))
    queue.empty_buckets_at(9.5)
    for seq in range(1, 11):
        queue.add(task(seq))
    assert queue.next("coder", 10.0) is None
    assert queue.wake_at("coder", 10.0) == 10.5
    assert queue.next("coder", 10.5) is not None
    assert queue.next("coder", 10.5) is None
    # Quiet for long enough, the bucket is full again: a burst, never more.
    assert len(pick_tenants(queue, 3, now=100.0)) == 3
    assert queue.next("coder", 100.0) is None


def test_rate_limit_counts_across_roles_and_other_tenants_go() -> None:
    queue = FairQueue(shares({"a": Share(starts_per_s=2.0, burst=1)}))
    queue.add(task(1, tenant="a", role="coder"))
    queue.add(task(2, tenant="a", role="reviewer"))
    queue.add(task(3, tenant="b", role="reviewer", priority=0))
    assert queue.next("coder", 0.0) is not None
    assert queue.next("reviewer", 0.0) == task(3, tenant="b", role="reviewer", priority=0)
    assert queue.next("reviewer", 0.0) is None
    assert queue.wake_at("reviewer", 0.0) == 0.5
    assert queue.next("reviewer", 0.5) == task(2, tenant="a", role="reviewer")


def test_wake_at_is_none_when_a_running_limit_holds() -> None:
    queue = FairQueue(shares({"a": Share(max_running=1, starts_per_s=1.0)}))
    queue.add(task(1))
    queue.add(task(2))
    assert queue.next("coder", 0.0) is not None
    assert queue.next("coder", 0.0) is None
    assert queue.wake_at("coder", 0.0) is None
    queue.finished("coder", "a")
    assert queue.wake_at("coder", 0.25) == 1.0
    assert queue.wake_at("nobody", 0.0) is None


def test_shares_are_read_again_on_every_call() -> None:
    table: dict[str, Share] = {"a": Share(max_running=1)}
    queue = FairQueue(shares(table))
    for seq in range(1, 5):
        queue.add(task(seq))
    assert queue.next("coder", 0.0) is not None
    assert queue.next("coder", 0.0) is None
    table["a"] = Share(max_running=2)
    assert queue.next("coder", 0.0) is not None
    table["a"] = Share(starts_per_s=1.0, burst=1)
    assert queue.next("coder", 0.0) is not None
    assert queue.next("coder", 0.0) is None


def test_a_weight_change_takes_effect_at_once() -> None:
    table: dict[str, Share] = {}
    queue = FairQueue(shares(table))
    for seq in range(1, 101):
        queue.add(task(seq, tenant="a"))
        queue.add(task(1000 + seq, tenant="b"))
    assert Counter(pick_tenants(queue, 20)) == {"a": 10, "b": 10}
    table["b"] = Share(weight=4)
    assert Counter(pick_tenants(queue, 50)) == {"a": 10, "b": 40}


def test_set_running_replaces_every_count() -> None:
    queue = FairQueue(shares({"a": Share(max_running=2)}))
    queue.add(task(1))
    assert queue.next("coder", 0.0) is not None
    queue.set_running({("reviewer", "a"): 2, ("coder", "b"): 3})
    assert queue.running("coder", "a") == 0
    assert queue.running("reviewer", "a") == 2
    assert queue.running("coder", "b") == 3
    queue.add(task(2))
    assert queue.next("coder", 0.0) is None
    queue.set_running({})
    assert queue.next("coder", 0.0) is not None
    assert queue.running("coder", "a") == 1


def test_finished_never_goes_below_zero() -> None:
    queue = FairQueue(shares({"a": Share(max_running=1)}))
    queue.finished("coder", "a")
    queue.finished("coder", "a")
    assert queue.running("coder", "a") == 0
    queue.add(task(1))
    queue.add(task(2))
    assert queue.next("coder", 0.0) is not None
    assert queue.running("coder", "a") == 1
    # a finish of another role must not free the running total
    queue.finished("reviewer", "a")
    assert queue.next("coder", 0.0) is None
    queue.finished("coder", "a")
    queue.finished("coder", "a")
    assert queue.running("coder", "a") == 0
    assert queue.next("coder", 0.0) is not None
    assert queue.next("coder", 0.0) is None


def test_add_refuses_a_seq_already_waiting() -> None:
    queue = FairQueue(shares({}))
    assert queue.add(task(1))
    assert not queue.add(task(1, tenant="b", role="reviewer", priority=9))
    assert queue.waiting() == 1
    assert queue.roles() == {"coder"}
    assert queue.next("coder", 0.0) == task(1)
    assert queue.add(task(1))


def test_remove_takes_a_task_out_anywhere_in_its_queue() -> None:
    queue = FairQueue(shares({}))
    for seq in range(1, 6):
        queue.add(task(seq))
    assert queue.remove(3) == task(3)
    assert queue.remove(3) is None
    assert queue.remove(1) == task(1)
    assert queue.remove(99) is None
    assert queue.waiting() == 3
    out = [queue.next("coder", 0.0) for _ in range(4)]
    assert [t.seq if t else None for t in out] == [2, 4, 5, None]
    queue.add(task(6))
    assert queue.remove(6) == task(6)
    assert queue.roles() == set()
    assert queue.depth() == {}


def test_why_says_the_first_reason_that_applies() -> None:
    table = {"a": Share(max_running=1, max_running_per_role={"coder": 1}, starts_per_s=0.5, burst=1)}
    queue = FairQueue(shares(table))
    for seq in range(1, 4):
        queue.add(task(seq))
    queue.add(task(10, tenant="b", priority=9))
    queue.add(task(11, tenant="b", priority=5))
    assert queue.why(99, 0.0) is None
    assert queue.why(1, 0.0) == "1 tasks of higher or equal priority go before it"
    assert queue.why(3, 0.0) == "3 tasks of higher or equal priority go before it"
    assert queue.why(10, 0.0) == "waiting for a free coder agent"
    assert queue.why(11, 0.0) == "1 tasks of higher or equal priority go before it"
    assert queue.next("coder", 0.0) == task(10, tenant="b", priority=9)
    assert queue.why(1, 0.0) == "waiting for a free coder agent"
    assert queue.why(3, 0.0) == "2 tasks of higher or equal priority go before it"
    got = queue.next("coder", 0.0)
    assert got is not None and got.tenant == "a"
    assert queue.why(2, 0.0) == "tenant a is at its limit of 1 running tasks"
    table["a"] = Share(max_running_per_role={"coder": 1}, starts_per_s=0.5)
    assert queue.why(2, 0.0) == "tenant a is at its limit of 1 running coder tasks"
    table["a"] = Share(starts_per_s=0.5)
    assert queue.why(2, 0.0) == "tenant a is at its rate limit of 0.5 starts/s"
    assert queue.why(2, 2.0) == "waiting for a free coder agent"


def test_depth_waiting_and_roles_stay_exact() -> None:
    queue = FairQueue(shares({}))
    queue.add(task(1, since=5.0))
    queue.add(task(2, since=3.0))
    queue.add(task(3, tenant="b", since=7.0))
    queue.add(task(4, role="reviewer", priority=2, since=1.0))
    assert queue.waiting() == 4
    assert queue.roles() == {"coder", "reviewer"}
    assert queue.depth() == {
        ("coder", 5, "a"): (2, 3.0),
        ("coder", 5, "b"): (1, 7.0),
        ("reviewer", 2, "a"): (1, 1.0),
    }
    assert queue.next("coder", 0.0) == task(1, since=5.0)
    queue.remove(4)
    assert queue.waiting() == 2
    assert queue.roles() == {"coder"}
    assert queue.depth() == {("coder", 5, "a"): (1, 3.0), ("coder", 5, "b"): (1, 7.0)}


def test_share_refuses_values_out_of_range() -> None:
    for bad in (
        {"weight": 0},
        {"burst": 0},
        {"max_running": -1},
        {"max_running_per_role": {"coder": -1}},
        {"starts_per_s": 0.0},
    ):
        with pytest.raises(ValueError):
            Share(**bad)


def test_share_keeps_its_own_copy_of_the_role_limits() -> None:
    per_role = {"coder": 1}
    share = Share(max_running_per_role=per_role)
    per_role["coder"] = 5
    assert share.max_running_per_role == {"coder": 1}


@pytest.mark.parametrize("seed", range(20))
def test_random_operations_keep_the_invariants(seed: int) -> None:
    rng = random.Random(seed)
    roles = ["coder", "reviewer", "tester"]
    tenants = ["a", "b", "c", "d"]
    table = {
        "a": Share(weight=3, max_running=3),
        "b": Share(max_running_per_role={"coder": 1, "reviewer": 2}),
        "c": Share(weight=2, starts_per_s=5.0, burst=3),
        "d": Share(),
    }
    rate_limited = {"c"}
    queue = FairQueue(shares(table))
    waiting: dict[int, Waiting] = {}
    added: set[int] = set()
    removed: set[int] = set()
    handed_out: list[Waiting] = []
    running: Counter[tuple[str, str]] = Counter()
    starts: Counter[str] = Counter()
    now = 0.0
    next_seq = 1
    late: list[int] = []

    def check_hand_out(role: str, got: Waiting | None) -> None:
        """The answer of next(role) against a model of the limits (rate-limited tenants aside)."""
        total = Counter[str]()
        for (_, tenant), n in running.items():
            total[tenant] += n

        def free(tenant: str) -> bool:
            share = table[tenant]
            if share.max_running is not None and total[tenant] >= share.max_running:
                return False
            cap = share.max_running_per_role.get(role)
            return cap is None or running[(role, tenant)] < cap

        could_go = [t for t in waiting.values() if t.role == role and free(t.tenant)]
        sure = [t for t in could_go if t.tenant not in rate_limited]
        if got is None:
            assert not sure
            return
        assert got.seq in waiting and got.role == role and free(got.tenant)
        assert got.priority >= max((t.priority for t in sure), default=0)
        same_queue = [
            t.seq
            for t in waiting.values()
            if (t.role, t.priority, t.tenant) == (role, got.priority, got.tenant)
        ]
        assert got.seq == min(same_queue)
        if got.tenant in rate_limited:
            share = table[got.tenant]
            assert share.starts_per_s is not None
            assert starts[got.tenant] + 1 <= share.burst + share.starts_per_s * now + 1e-6

    for _ in range(3000):
        op = rng.random()
        if op < 0.4:
            # mostly in seq order; a seq skipped now arrives later, behind larger ones
            if late and rng.random() < 0.2:
                seq = late.pop(rng.randrange(len(late)))
            else:
                if rng.random() < 0.1:
                    late.append(next_seq)
                    next_seq += 1
                seq = next_seq
                next_seq += 1
            new = Waiting(seq, rng.choice(roles), rng.randrange(10), rng.choice(tenants), now)
            assert queue.add(new)
            assert not queue.add(new)
            added.add(seq)
            waiting[seq] = new
        elif op < 0.5 and waiting:
            seq = rng.choice(sorted(waiting))
            assert queue.remove(seq) == waiting.pop(seq)
            removed.add(seq)
        elif op < 0.85:
            role = rng.choice(roles)
            got = queue.next(role, now)
            check_hand_out(role, got)
            if got is not None:
                del waiting[got.seq]
                handed_out.append(got)
                running[(got.role, got.tenant)] += 1
                starts[got.tenant] += 1
        elif op < 0.95:
            busy = [key for key, n in running.items() if n > 0]
            if busy:
                role, tenant = rng.choice(sorted(busy))
                queue.finished(role, tenant)
                running[(role, tenant)] -= 1
        else:
            now += rng.random() * 0.5
        assert queue.waiting() == len(waiting)
        for key, n in running.items():
            assert queue.running(*key) == n

    assert queue.depth() == {
        key: (
            sum(1 for t in waiting.values() if (t.role, t.priority, t.tenant) == key),
            min(t.since for t in waiting.values() if (t.role, t.priority, t.tenant) == key),
        )
        for key in {(t.role, t.priority, t.tenant) for t in waiting.values()}
    }

    table.clear()
    for role in roles:
        while (got := queue.next(role, now)) is not None:
            handed_out.append(got)
            del waiting[got.seq]
    assert not waiting and queue.waiting() == 0 and queue.roles() == set()
    seqs = [t.seq for t in handed_out]
    assert len(seqs) == len(set(seqs))
    assert set(seqs) == added - removed
