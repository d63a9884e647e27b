"""The lifecycle of a human queue's task: claimed (running, leased), released (back to queued), a lease that
ran out, completed; and what an agent's task refuses of these."""

from __future__ import annotations

from datetime import timedelta

from maestro.lifecycle import Applied, ArmTimer, ExpireLease, Notify, Record, Refused, step
from proto.v1 import (
    Claimed,
    Escalated,
    Failed,
    HandedOff,
    Queued,
    Released,
    Succeeded,
    TaskRecord,
    TimerFired,
)
from proto.v1.humans import HumanWork
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


SLA = HumanWork(time_to_claim_s=30, time_to_complete_s=120, on_breach="widen", escalate_to="leads")


def applied_commands(result: object) -> tuple[object, ...]:
    assert isinstance(result, Applied), result
    return result.commands


def _with_sla(*events: object) -> TaskRecord:
    return run(accepted(role="human:security", model=None, human=SLA), *events)  # type: ignore[arg-type]


def test_queued_arms_the_time_to_claim_and_a_claim_the_time_to_complete() -> None:
    queued = step(_with_sla(), _queued(), 2)
    assert isinstance(queued, Applied)
    assert queued.commands == (ArmTimer("acme", ID, "claim_sla", at(32)),)
    claimed = step(queued.record, _claimed(), 3)
    assert isinstance(claimed, Applied)
    assert ArmTimer("acme", ID, "complete_sla", at(123), 1) in claimed.commands


def test_a_breached_sla_escalates_once_with_its_notification_and_widens_the_queue() -> None:
    waiting = _with_sla(_queued())
    due = step(waiting, TimerFired(task_id=ID, tenant="acme", at=at(32), timer="claim_sla"), 3)
    assert isinstance(due, Applied)
    (recorded, notify) = due.commands
    assert isinstance(recorded, Record) and isinstance(recorded.event, Escalated)
    assert (recorded.event.sla, recorded.event.action, recorded.event.to) == ("claim", "widen", "leads")
    assert isinstance(notify, Notify) and notify.msg_id == recorded.msg_id == f"{ID}.escalated-claim"
    assert (notify.notification.queue, notify.notification.to) == ("security", "leads")
    escalated = applied(step(waiting, recorded.event, 3))
    assert (escalated.state, escalated.escalations, escalated.widened_to) == ("queued", ["claim"], ["leads"])
    # The same timer again (redelivered), or claimed meanwhile: nothing more.
    again = TimerFired(task_id=ID, tenant="acme", at=at(33), timer="claim_sla")
    assert step(escalated, again, 4).commands == ()  # type: ignore[union-attr]
    claimed = applied(step(waiting, _claimed(), 3))
    assert step(claimed, again, 4).commands == ()  # type: ignore[union-attr]


def test_a_breach_whose_policy_fails_the_task_records_the_failure_too() -> None:
    failing = HumanWork(time_to_complete_s=60, on_breach="fail")
    held = run(accepted(role="human:ops", model=None, human=failing), _queued(), _claimed())
    due = step(held, TimerFired(task_id=ID, tenant="acme", at=at(63), timer="complete_sla", attempt=1), 4)
    assert isinstance(due, Applied)
    failed = [c.event for c in due.commands if isinstance(c, Record) and isinstance(c.event, Failed)]
    assert [f.error for f in failed] == ["not completed within 60s of being claimed by alice"]
    # A later claim's timer is not this one's.
    later = TimerFired(task_id=ID, tenant="acme", at=at(63), timer="complete_sla", attempt=2)
    assert applied_commands(step(held, later, 4)) == ()


def test_an_agents_hand_off_makes_its_task_a_human_queues_waiting_for_a_person() -> None:
    running = run(
        accepted(), Queued(task_id=ID, tenant="acme", at=at(2), role="implementer", decision=ALLOW), started()
    )
    handed = HandedOff(
        task_id=ID,
        tenant="acme",
        at=at(9),
        worker="w-1",
        queue="qa",
        reason="the implementer could not proceed (invalid_output): no diff",
        human=HumanWork(time_to_claim_s=60),
        cost_micro_usd=40,
    )
    result = step(running, handed, 9)
    assert isinstance(result, Applied)
    record = result.record
    assert (record.state, record.role, record.worker, record.cost_micro_usd) == ("queued", "human:qa", "", 40)
    assert record.queued_at == at(9) and record.human == HumanWork(time_to_claim_s=60)
    assert result.commands == (ArmTimer("acme", ID, "claim_sla", at(69)),)
    assert isinstance(step(record, handed, 10), Refused)  # handed off once: it is a person's task now
