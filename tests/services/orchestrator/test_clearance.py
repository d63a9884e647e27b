"""Purging handed-over tasks from the waiting stream in bursts (dispatch/clearance.py)."""

from __future__ import annotations

from services.orchestrator.dispatch.clearance import Clearance

S = "maestro.v1.wait.planner.5.acme"


def test_a_burst_of_hand_overs_is_one_purge_up_to_the_highest() -> None:
    clearance = Clearance()
    for seq in (3, 4, 5):
        clearance.opened(S, seq)
    assert clearance.bound(S) is None  # nothing handed over yet
    for seq in (3, 4, 5):
        clearance.closed(S, seq, handed=True)
    assert clearance.bound(S) == 6
    clearance.purged(S, 6)
    assert clearance.bound(S) is None


def test_nothing_at_or_after_a_task_still_open_is_purged() -> None:
    clearance = Clearance()
    for seq in (3, 4, 5, 6):
        clearance.opened(S, seq)
    clearance.closed(S, 3, handed=True)
    clearance.closed(S, 5, handed=True)  # 4 still on its way (or back in the queue after a failure)
    assert clearance.bound(S) == 4
    clearance.purged(S, 4)
    assert clearance.bound(S) is None
    clearance.closed(S, 4, handed=True)
    assert clearance.bound(S) == 6  # 6 still waits
    clearance.purged(S, 6)
    clearance.closed(S, 6, handed=True)
    assert clearance.bound(S) == 7


def test_a_task_gone_otherwise_does_not_move_the_bound_but_stops_holding_it() -> None:
    clearance = Clearance()
    for seq in (3, 4):
        clearance.opened(S, seq)
    clearance.closed(S, 3, handed=False)  # ended while it waited: deleted on its own
    assert clearance.bound(S) is None
    clearance.closed(S, 4, handed=True)
    assert clearance.bound(S) == 5


def test_subjects_are_apart_and_a_cleared_one_is_forgotten() -> None:
    clearance = Clearance()
    other = "maestro.v1.wait.planner.5.beta"
    clearance.opened(S, 1)
    clearance.opened(other, 2)
    clearance.closed(other, 2, handed=True)
    assert clearance.bound(S) is None and clearance.bound(other) == 3
    clearance.purged(other, 3)
    assert other not in clearance._open and other not in clearance._handed
