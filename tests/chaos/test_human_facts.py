"""The human-work invariants' pure checks, on histories made by hand: each can pass, and each can fail."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from msgspec import structs

from chaos.facts import Facts, StoredEvent
from chaos.human_facts import HumanFacts, Told, check_humans, kind_of, lives, move
from maestro.desk.desk import LEASE_BY
from proto.v1 import Claimed, Released, Succeeded, TaskEvent, TaskRecord

T0 = datetime(2026, 1, 1, tzinfo=UTC)
LEAD = "carol@acme"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def claimed(by: str, claim: int, when: float, lease_s: float = 5.0) -> Claimed:
    return Claimed(
        task_id="t", tenant="acme", at=at(when), by=by, lease_until=at(when + lease_s), claim=claim
    )


def released(by: str, claim: int, when: float) -> Released:
    return Released(task_id="t", tenant="acme", at=at(when), by=by, claim=claim)


def succeeded(worker: str, mark: str, when: float) -> Succeeded:
    return Succeeded(task_id="t", tenant="acme", at=at(when), worker=worker, output=f'{{"comment":"{mark}"}}')


def stored(*events: TaskEvent) -> list[StoredEvent]:
    return [StoredEvent(seq=n + 1, stored_at=0.0, event=e) for n, e in enumerate(events)]


def judged(events: list[StoredEvent], told: list[Told], **changes: object) -> tuple[list[str], list[str]]:
    """The violations and notes of one task `t` with these events and what its people were told; its record
    is what its last task.succeeded says, unless `record` is given."""
    ends = [e.event for e in events if isinstance(e.event, Succeeded)]
    claims = len({e.event.claim for e in events if isinstance(e.event, Claimed)})
    record = TaskRecord(
        id="t",
        tenant="acme",
        state="succeeded" if ends else "running",
        created_at=T0,
        updated_at=T0,
        role="human:review",
        worker=ends[-1].worker if ends else "",
        output=ends[-1].output if ends else "",
        claims=claims,
    )
    facts = HumanFacts(
        kinds={"t": "lapse"},
        leads=frozenset({LEAD}),
        told=told,
        raced={"t"},
        checked_at=at(100),
    )
    for name, value in changes.items():
        if name == "record":
            record = value  # type: ignore[assignment]
        else:
            setattr(facts, name, value)
    verdict = check_humans(facts, Facts(records={"t": record}, events={"t": events}))
    return verdict.violations, verdict.notes


def told(person: str, action: str, outcome: str = "won", claim: int = 0, mark: str = "") -> Told:
    output = f'{{"comment":"{mark}"}}' if action == "complete" and outcome == "won" else ""
    return Told(person, "t", action, outcome, claim=claim, mark=mark, output=output)  # type: ignore[arg-type]


# A task whose first claim lapsed, whose second was released, and whose third was completed in a race the
# lead won: everything the scenario's people do, as it should be stored.
HISTORY = stored(
    claimed("alice@acme", 1, 0),
    released(LEASE_BY, 1, 5.5),
    claimed("bob@acme", 2, 6),
    released("bob@acme", 2, 7),
    claimed("alice@acme", 3, 8),
    claimed("alice@acme", 3, 8.5),
    succeeded(LEAD, "[carol 2]", 9),
)
TOLD = [
    told("alice@acme", "claim", claim=1),
    told("bob@acme", "claim", "lost"),
    told("bob@acme", "claim", claim=2),
    told("bob@acme", "release", claim=2),
    told("alice@acme", "claim", claim=3),
    told("alice@acme", "claim", claim=3),
    told("alice@acme", "complete", "lost", mark="[alice 1]"),
    told(LEAD, "complete", mark="[carol 2]"),
]


def test_a_history_where_every_claim_ended_as_told_keeps_every_invariant() -> None:
    abandoned = [("t", "alice@acme", 1)]
    # Bob's release was cut off by a kill once and asked again.
    said = [dataclasses.replace(t, tries=2) if t.action == "release" else t for t in TOLD]
    facts = HumanFacts(kinds={"t": "lapse"}, leads=frozenset({LEAD}), told=said, abandoned=abandoned)
    facts.raced.add("t")
    record = TaskRecord(
        id="t",
        tenant="acme",
        state="succeeded",
        created_at=T0,
        updated_at=T0,
        worker=LEAD,
        output='{"comment":"[carol 2]"}',
        claims=3,
    )
    verdict = check_humans(facts, Facts(records={"t": record}, events={"t": HISTORY}))
    assert verdict.violations == [] and verdict.notes == []
    counts = verdict.counts
    assert (counts.claims, counts.claims_lost, counts.releases, counts.lease_expiries) == (3, 1, 1, 1)
    assert (counts.completions, counts.completions_lost, counts.races, counts.won_by_lead) == (1, 1, 1, 1)
    assert counts.asked_again == 1 and counts.unknown == 0 and counts.renewals == 1
    assert "3 claims stored (1 claim attempts lost to another, 1 renewed)" in counts.line()


def test_a_second_completion_or_one_by_who_was_told_they_lost_is_named() -> None:
    twice = [*HISTORY, StoredEvent(7, 0.0, succeeded("alice@acme", "[alice 1]", 10))]
    violations, _ = judged(twice, TOLD)
    assert any("tasks without exactly one task.succeeded: t (2)" in v for v in violations)
    lost_won = [*HISTORY[:-1], StoredEvent(6, 0.0, succeeded("alice@acme", "[alice 1]", 9))]
    violations, _ = judged(lost_won, TOLD)
    assert any("completed by someone told they lost: t (alice@acme)" in v for v in violations)
    assert any("completions told won whose answer is not the task's: t (carol@acme)" in v for v in violations)


def test_a_task_never_completed_or_completed_without_anyone_told_is_named() -> None:
    violations, _ = judged(HISTORY[:-1], TOLD[:-2])
    assert any("claims told won that never ended: t#3 (alice@acme)" in v for v in violations)
    assert any("without exactly one task.succeeded: t (0)" in v for v in violations)
    violations, _ = judged(HISTORY, TOLD[:-1])
    assert any("tasks completed without anyone told they completed them: t" in v for v in violations)


def test_a_claim_told_won_but_not_stored_or_completed_by_a_stranger_is_named() -> None:
    violations, _ = judged(HISTORY, [*TOLD, told("dave@acme", "claim", claim=4)])
    assert any("claims told won that were never stored: t#4 (dave@acme)" in v for v in violations)
    by_stranger = [*HISTORY[:-1], StoredEvent(6, 0.0, succeeded("erin@acme", "[erin 5]", 9))]
    violations, _ = judged(by_stranger, [*TOLD[:-1], told("erin@acme", "complete", mark="[erin 5]")])
    assert any("neither the claimant nor a lead: t#3 (erin@acme)" in v for v in violations)


def test_a_lease_that_ends_a_claim_early_or_an_abandoned_claim_it_never_ends_is_named() -> None:
    early = [HISTORY[0], StoredEvent(2, 0.0, released(LEASE_BY, 1, 4.9)), *HISTORY[2:]]
    violations, _ = judged(early, TOLD)
    assert any("its lease ended claim 1 at" in v and "before it ran out" in v for v in violations)
    # Alice said she walked away from claim 3, but it was completed: not what a lapsed lease does.
    violations, _ = judged(HISTORY, TOLD, abandoned=[("t", "alice@acme", 3)])
    assert any("abandoned claims their lease did not return: t#3 (alice@acme)" in v for v in violations)


def test_a_claim_nobody_was_told_of_is_excused_only_when_its_lease_returned_it() -> None:
    untold_lapsed = TOLD[1:]
    violations, notes = judged(HISTORY, untold_lapsed)
    assert violations == [] and any("1 claims their claimant never heard of" in n for n in notes)
    untold_released = [t for t in TOLD if (t.action, t.claim) != ("claim", 2)]
    violations, _ = judged(HISTORY, untold_released)
    assert any("claimant was never told of, not returned by a lease: t#2 (bob@acme)" in v for v in violations)


def test_changes_after_the_end_and_a_claim_ended_twice_are_named() -> None:
    after = [*HISTORY, StoredEvent(7, 0.0, released("alice@acme", 3, 10))]
    assert any("Released of claim 3 after it was completed" in v for v in lives("t", after).violations)
    twice = [*HISTORY[:4], StoredEvent(5, 0.0, released(LEAD, 2, 7.5)), *HISTORY[4:]]
    assert "t: claim 2 ended 2 times" in lives("t", twice).violations


def test_a_record_that_disagrees_or_is_left_running_on_a_lapsed_lease_is_named() -> None:
    record = TaskRecord(
        id="t", tenant="acme", state="succeeded", created_at=T0, updated_at=T0, worker="alice@acme", claims=3
    )
    violations, _ = judged(HISTORY, TOLD, record=record)
    assert any("records disagree with the task.succeeded stored" in v for v in violations)
    running = structs.replace(record, state="running", lease_until=at(50), claims=2)
    violations, _ = judged(HISTORY[:-1], TOLD[:-2], record=running)
    assert any("tasks left running with a lapsed lease: t (held by alice@acme)" in v for v in violations)
    assert any("records count other claims than were stored: t (2, 3)" in v for v in violations)


def test_dead_letters_and_a_run_with_nothing_raced_released_or_lapsed_fail() -> None:
    violations, _ = judged(HISTORY, TOLD, dead_letters=2)
    assert any("dead letters: 2 in the DLQ" in v for v in violations)
    plain = stored(claimed("alice@acme", 1, 0), succeeded("alice@acme", "[alice 1]", 1))
    said = [told("alice@acme", "claim", claim=1), told("alice@acme", "complete", mark="[alice 1]")]
    violations, _ = judged(plain, said, raced=set())
    assert [v.split(":")[0] for v in violations] == [
        "no completion was raced",
        "nobody released a claim",
        "no lease ran out",
    ]


def test_the_script_abandons_or_releases_a_first_claim_and_races_only_a_claimant_who_does_not_lead() -> None:
    assert [kind_of(n) for n in range(9)] == [
        "plain",
        "lapse",
        "race",
        "release",
        "plain",
        "plain",
        "race",
        "plain",
        "plain",
    ]
    assert move("lapse", 1, lead=False) == "abandon" and move("lapse", 2, lead=False) == "renew"
    assert move("release", 1, lead=True) == "release" and move("release", 2, lead=True) == "complete"
    assert move("race", 1, lead=False) == "race" and move("race", 1, lead=True) == "complete"
    assert move("plain", 1, lead=False) == "complete"
