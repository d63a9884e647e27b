"""Who holds a human task, folded from its events, and who may claim, complete or release it (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from maestro.desk.holding import Problem, Someone, claim_problem, finish_problem, holding
from proto.v1 import Accepted, Claimed, Decision, Queued, Released, Succeeded, TaskEvent
from proto.v1.humans import Person, WorkingHours

T0 = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)  # a Wednesday
ALICE = Someone("alice", Person(id="alice", skills=["security"], capacity=2))
BOB = Someone("bob", Person(id="bob", skills=["ops"]))
LEAD = Someone("lea", Person(id="lea", skills=["security"], lead=True))
ADMIN = Someone("root", None, admin=True)


def _events(*more: TaskEvent) -> list[tuple[int, TaskEvent]]:
    base: list[TaskEvent] = [
        Accepted(task_id="t", tenant="acme", at=T0, role="human:security"),
        Queued(task_id="t", tenant="acme", at=T0, role="human:security", decision=Decision(verdict="allow")),
    ]
    return [(seq * 10, event) for seq, event in enumerate([*base, *more], start=1)]


def _claimed(by: str = "alice", claim: int = 1, minutes: int = 30) -> Claimed:
    return Claimed(
        task_id="t", tenant="acme", at=T0, by=by, lease_until=T0 + timedelta(minutes=minutes), claim=claim
    )


def test_the_events_say_where_it_stands_who_holds_it_and_the_last_sequence() -> None:
    waiting = holding("t", _events())
    assert (waiting.standing, waiting.queue, waiting.last_seq, waiting.claim) == (
        "waiting",
        "security",
        20,
        0,
    )
    held = holding("t", _events(_claimed()))
    assert (held.standing, held.by, held.claim, held.last_seq) == ("claimed", "alice", 1, 30)
    back = holding("t", _events(_claimed(), Released(task_id="t", tenant="acme", at=T0, by="lease")))
    assert (back.standing, back.by, back.claim) == ("waiting", "", 1)
    done = holding("t", _events(_claimed(), Succeeded(task_id="t", tenant="acme", at=T0, worker="alice")))
    assert (done.standing, done.by) == ("ended", "alice")
    assert holding("t", []).standing == "unknown"


def test_only_someone_serving_the_queue_claims_and_only_while_nobody_else_holds_it() -> None:
    waiting = holding("t", _events())
    assert claim_problem(waiting, ALICE, T0, 0) is None
    assert claim_problem(waiting, ADMIN, T0, 0) is None
    assert claim_problem(waiting, BOB, T0, 0) == Problem(
        403, "bob does not serve the security queue (not among their skills)"
    )
    nobody = Someone("zed", None)
    assert claim_problem(waiting, nobody, T0, 0).status == 403  # type: ignore[union-attr]
    held = holding("t", _events(_claimed()))
    assert claim_problem(held, ALICE, T0, 5) is None  # a renewal, whatever else she holds
    taken = claim_problem(held, LEAD, T0, 0)
    assert taken == Problem(409, "task t is claimed by alice until 2026-12-02T10:30:00+00:00")


def test_capacity_availability_and_hours_hold_a_new_claim_back() -> None:
    waiting = holding("t", _events())
    assert claim_problem(waiting, ALICE, T0, 2) == Problem(
        403, "alice already holds 2 task(s), their capacity"
    )
    away = Someone("alice", Person(id="alice", skills=["security"], available=False))
    assert claim_problem(waiting, away, T0, 0) == Problem(403, "alice is marked unavailable")
    paris = Person(
        id="p", skills=["security"], timezone="Europe/Paris", hours=WorkingHours(start="11:00", end="12:00")
    )
    assert claim_problem(waiting, Someone("p", paris), T0, 0) is None  # 10:00 UTC is 11:00 in Paris
    off = claim_problem(waiting, Someone("p", paris), T0 - timedelta(hours=1), 0)
    assert off == Problem(403, "p is outside their working hours (11:00-12:00 Europe/Paris)")


def test_the_claimant_while_the_lease_lasts_or_a_lead_of_the_queue_completes() -> None:
    held = holding("t", _events(_claimed()))
    assert finish_problem(held, ALICE, T0, "complete") is None
    assert finish_problem(held, LEAD, T0, "complete") is None
    assert finish_problem(held, ADMIN, T0, "release") is None
    other = Someone("carl", Person(id="carl", skills=["security"]))
    assert finish_problem(held, other, T0, "complete") == Problem(
        403, "task t is claimed by alice: only they, or a lead of security, may complete it"
    )
    lapsed = finish_problem(held, ALICE, T0 + timedelta(minutes=31), "complete")
    assert lapsed is not None and lapsed.status == 409 and "lapsed" in lapsed.text
    assert finish_problem(holding("t", _events()), ALICE, T0, "release") == Problem(
        409, "task t is not claimed: claim it before you release it"
    )
