"""The lifecycle of a human queue's task: claimed (running, leased), released (back to queued), a lease that
ran out, completed; and what an agent's task refuses of these."""

from __future__ import annotations

from datetime import timedelta

from proto.v1 import Claimed, Queued, Released, Succeeded, TimerFired
from proto.v1.humans import HumanWork
from services.orchestrator.lifecycle import Applied, ArmTimer, ExpireLease, Refused, step
from tests.services.orchestrator.test_lifecycle import ALLOW, ID, accepted, applied, at, run, started

HUMAN = HumanWork(lease_s=60)


def _accepted() -> object:
    return accepted(role="human:security", model=None, human=HUMAN)


def _queued() -> Queued:
    return Queued(task_id=ID, tenant="acme", at=at(2), role="human:security", decision=ALLOW)


def _claimed(claim: int = 1, by: str = "alice", when: int = 3) -> Claimed:
    return Claimed(task_id=ID, tenant="acme", at=at(when), by=by, lease_until=at(when + 60), claim=claim)


def _released(claim: int = 1, by: str = "alice") -> Released:
    return Released(task_id=ID, tenant="acme", at=at(10), by=by, claim=claim, reason="released")


def _lease_fired(claim: int, when: int) -> TimerFired:
    return TimerFired(task_id=ID, tenant="acme", at=at(when), timer="lease", attempt=claim)


def test_a_claim_runs_the_task_for_its_claimant_and_arms_the_lease() -> None:
    before = run(_accepted(), _queued())  # type: ignore[arg-type]
    assert before.human == HUMAN and before.state == "queued"
    result = step(before, _claimed(), 3)
    assert isinstance(result, Applied)
    record = result.record
    assert (record.state, record.worker, record.claims, record.lease_until) == ("running", "alice", 1, at(63))
    assert record.started_at == at(3)
    assert result.commands == (ArmTimer("acme", ID, "lease", at(63), 1),)


def test_a_claim_again_by_its_holder_renews_the_lease_and_rearms_its_timer() -> None:
    held = run(_accepted(), _queued(), _claimed())  # type: ignore[arg-type]
    result = step(held, _claimed(claim=1, when=30), 4)
    assert isinstance(result, Applied) and result.record.lease_until == at(90)
    assert result.commands == (ArmTimer("acme", ID, "lease", at(90), 1),)


def test_a_release_puts_the_task_back_in_its_queue_and_the_next_claim_counts_on() -> None:
    back = run(_accepted(), _queued(), _claimed(), _released())  # type: ignore[arg-type]
    assert (back.state, back.worker, back.lease_until, back.claims) == ("queued", "", None, 1)
    again = applied(step(back, _claimed(claim=2, by="bob"), 5))
    assert (again.state, again.worker, again.claims) == ("running", "bob", 2)
    assert isinstance(step(back, _claimed(claim=1, by="bob"), 5), Refused)  # an old claim's number


def test_a_lease_timer_ends_only_the_claim_it_was_armed_for_once_it_ran_out() -> None:
    held = run(_accepted(), _queued(), _claimed())  # type: ignore[arg-type]
    due = step(held, _lease_fired(1, 63), 4)
    assert isinstance(due, Applied) and due.commands == (ExpireLease("acme", ID, 1),)
    # Renewed since it was armed: the lease still runs.
    renewed = applied(step(held, _claimed(claim=1, when=30), 4))
    assert step(renewed, _lease_fired(1, 63), 5).commands == ()  # type: ignore[union-attr]
    # Released and claimed again: the first claim's timer ends nothing.
    reclaimed = run(_accepted(), _queued(), _claimed(), _released(), _claimed(claim=2, by="bob", when=20))  # type: ignore[arg-type]
    assert step(reclaimed, _lease_fired(1, 63), 6).commands == ()  # type: ignore[union-attr]


def test_a_completion_ends_the_task_with_the_answer_as_its_output() -> None:
    done = run(
        _accepted(),  # type: ignore[arg-type]
        _queued(),
        _claimed(),
        Succeeded(task_id=ID, tenant="acme", at=at(40), worker="alice", output='{"approved":true}'),
    )
    assert (done.state, done.worker, done.output) == ("succeeded", "alice", '{"approved":true}')
    assert done.finished_at is not None and done.started_at is not None
    assert done.finished_at - done.started_at == timedelta(seconds=37)


def test_an_agents_task_is_never_claimed_nor_released() -> None:
    running = run(
        accepted(), Queued(task_id=ID, tenant="acme", at=at(2), role="implementer", decision=ALLOW), started()
    )
    assert isinstance(step(running, _claimed(), 9), Refused)
    assert isinstance(step(running, _released(), 9), Refused)
