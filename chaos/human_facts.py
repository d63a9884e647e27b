"""What the human-work scenario sees, and the invariants over it (pure checks, no I/O).

People claim, release and complete human tasks while services are SIGKILLed; each of them keeps what the
desk told them (`Told`). The tasks are judged as any task is (chaos/invariants.py: one end each, the
ledgers); these add the claims' own, read from the task's events:
- every task was completed exactly once (one `task.succeeded`), with the answer of the one person told
  they completed it, and its record says so (worker and output);
- nobody told they lost a completion gave the stored answer; nobody was told they completed a task with an
  answer that is not the task's;
- every claim a person was told they won is stored, and ended exactly once: completed by them (or a lead),
  released, or returned by its lease, never before the lease ran out; a claim abandoned is returned by its
  lease; a claim stored that its claimant never heard of is excused only when its lease returned it;
- nothing is claimed or released after the task ended; no record is left running with a lapsed lease; no
  dead letters.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from chaos.facts import Facts, StoredEvent, some
from maestro.desk.desk import LEASE_BY
from proto.v1 import Claimed, Released, Succeeded, TaskRecord

Kind = Literal["plain", "race", "release", "lapse"]
"""What a task's script asks of the people: complete it; complete it twice at once (the claimant and a
lead); release its first claim; abandon its first claim (a short lease brings it back), then renew the next
claim before completing it."""
Move = Literal["complete", "race", "release", "abandon", "renew"]
Action = Literal["claim", "release", "complete"]
Outcome = Literal["won", "lost", "unknown"]
"""The desk did it; it refused (another got there first, or it is not the person's to do); no answer came
within the person's patience."""
_SCHEDULE: tuple[Kind, ...] = ("plain", "lapse", "race", "release", "plain", "plain", "race", "plain")


def kind_of(n: int) -> Kind:
    """The script of the n-th standalone task: of every 8, 4 plain, 2 raced, 1 released, 1 abandoned."""
    return _SCHEDULE[n % len(_SCHEDULE)]


def move(kind: Kind, claim: int, *, lead: bool) -> Move:
    """What a person who just won claim number `claim` of a task of `kind` does with it: a lapse task's
    first claim is abandoned, its next renewed (claimed again) and then completed; a release task's first
    claim is released; a race task's claimant completes it while a lead completes it too (unless the
    claimant is a lead); everything else is completed."""
    if kind == "lapse":
        return "abandon" if claim == 1 else "renew"
    if claim == 1 and kind == "release":
        return "release"
    if kind == "race" and not lead:
        return "race"
    return "complete"


@dataclass(frozen=True)
class Told:
    """What the desk finally answered a person who asked one thing (their retries of it included)."""

    person: str
    task_id: str
    action: Action
    outcome: Outcome
    claim: int = 0
    """A won claim's (or release's) number."""
    mark: str = ""
    """A completion's: the text only its answer holds."""
    output: str = ""
    """A won completion's output as the desk returned it."""
    why: str = ""
    """Why it was lost, as the desk said."""
    tries: int = 1
    """How often the person asked (more than once: a kill cut the request off, or the service was down)."""


@dataclass
class HumanFacts:
    """The human tasks, what the people were told, and what they did with what they won."""

    kinds: dict[str, Kind] = field(default_factory=dict)
    """Every human task acknowledged, by id, with its script."""
    leads: frozenset[str] = frozenset()
    told: list[Told] = field(default_factory=list)
    abandoned: list[tuple[str, str, int]] = field(default_factory=list)
    """(task id, person, claim): claims their claimant walked away from."""
    raced: set[str] = field(default_factory=set)
    """Tasks completed by their claimant and a lead at the same moment."""
    dead_letters: int = 0
    checked_at: datetime | None = None
    """When the records were read (a running record's lease is judged against it)."""


@dataclass
class ClaimLife:
    """One claim of a task as its events tell it: who, until when (the last renewal), and how it ended."""

    task_id: str
    number: int
    by: str
    lease_until: datetime
    ends: list[Released | Succeeded] = field(default_factory=list)
    renewals: int = 0


@dataclass(frozen=True)
class Lives:
    """A task's claims by number, and what its events got wrong on their own."""

    claims: dict[int, ClaimLife]
    succeeded: list[Succeeded]
    violations: list[str]


def lives(task_id: str, events: Sequence[StoredEvent]) -> Lives:
    """Fold a task's stored events (oldest first) into its claims."""
    claims: dict[int, ClaimLife] = {}
    succeeded: list[Succeeded] = []
    wrong: list[str] = []
    open_claim: ClaimLife | None = None
    for stored in events:
        event = stored.event
        if isinstance(event, Claimed | Released) and succeeded:
            wrong.append(f"{task_id}: {type(event).__name__} of claim {event.claim} after it was completed")
            continue
        match event:
            case Claimed(by=by, lease_until=until, claim=number):
                life = claims.get(number)
                if life is None:
                    life = claims[number] = ClaimLife(task_id, number, by, until)
                elif life.by != by or life.ends:
                    wrong.append(f"{task_id}: claim {number} taken again by {by} (held by {life.by})")
                else:
                    life.lease_until = max(life.lease_until, until)
                    life.renewals += 1
                open_claim = life
            case Released(claim=number, by=by, at=at) as released:
                life = claims.get(number)
                if life is None:
                    wrong.append(f"{task_id}: claim {number} released by {by} but never stored")
                    continue
                if by == LEASE_BY and at < life.lease_until:
                    wrong.append(
                        f"{task_id}: its lease ended claim {number} at {at:%H:%M:%S.%f}, before it ran out "
                        f"at {life.lease_until:%H:%M:%S.%f}"
                    )
                life.ends.append(released)
                if open_claim is life:
                    open_claim = None
            case Succeeded() as done:
                succeeded.append(done)
                if open_claim is None:
                    wrong.append(f"{task_id}: completed by {done.worker} while nobody held a claim")
                else:
                    open_claim.ends.append(done)
                    open_claim = None
    wrong += [f"{task_id}: claim {n} ended {len(c.ends)} times" for n, c in claims.items() if len(c.ends) > 1]
    return Lives(claims, succeeded, wrong)


@dataclass(frozen=True)
class Counts:
    """The numbers of a run, for its report."""

    tasks: int
    claims: int
    """Claims stored (renewals not counted)."""
    renewals: int
    """Claims renewed by their holder (stored again, the lease moved on)."""
    claims_lost: int
    """Claim attempts the desk refused (someone else's, ended, not queued by the person's reading)."""
    releases: int
    lease_expiries: int
    completions: int
    completions_lost: int
    races: int
    won_by_lead: int
    """Races the lead won."""
    untold: int
    """Claims stored that their claimant never heard of, returned by their lease."""
    unknown: int
    """Things asked that had no answer within the person's patience."""
    asked_again: int
    """Things asked more than once before an answer came (a kill cut the request off, or the service was
    down)."""

    def line(self) -> str:
        """The counts in a sentence."""
        return (
            f"{self.tasks} human tasks: {self.claims} claims stored ({self.claims_lost} claim attempts "
            f"lost to another, {self.renewals} renewed), {self.releases} released by people, "
            f"{self.lease_expiries} returned by a lapsed lease, {self.completions} completions "
            f"({self.completions_lost} told they lost), {self.races} completion races ({self.won_by_lead} "
            f"won by the lead); {self.asked_again} requests asked again before an answer came"
        )


@dataclass(frozen=True)
class HumanCheck:
    """The verdict on the human tasks."""

    counts: Counts
    violations: list[str]
    notes: list[str]


@dataclass
class _Found:
    """Violations by kind, each a list of the cases."""

    by_kind: dict[str, list[str]] = field(default_factory=dict)

    def add(self, kind: str, case: str) -> None:
        self.by_kind.setdefault(kind, []).append(case)

    def lines(self) -> list[str]:
        return [f"{len(cases)} {kind}: {some(cases)}" for kind, cases in self.by_kind.items()]


def _check_record(
    found: _Found, task_id: str, record: TaskRecord | None, task: Lives, checked_at: datetime | None
) -> None:
    if record is None:
        return
    if record.claims != len(task.claims):
        found.add(
            "records count other claims than were stored", f"{task_id} ({record.claims}, {len(task.claims)})"
        )
    end = task.succeeded[0] if task.succeeded else None
    if (
        end is not None
        and record.state == "succeeded"
        and (record.worker, record.output) != (end.worker, end.output)
    ):
        found.add("records disagree with the task.succeeded stored (worker, output)", task_id)
    lapsed = record.lease_until is not None and checked_at is not None and record.lease_until <= checked_at
    if record.state == "running" and lapsed:
        found.add("tasks left running with a lapsed lease", f"{task_id} (held by {record.worker})")


def _check_told(found: _Found, facts: HumanFacts, task_id: str, told: list[Told], task: Lives) -> None:
    end = task.succeeded[0] if task.succeeded else None
    won_completions = [t for t in told if t.action == "complete" and t.outcome == "won"]
    if end is not None and not won_completions:
        found.add("tasks completed without anyone told they completed them", task_id)
    for t in won_completions:
        if end is None or (t.person, t.output) != (end.worker, end.output):
            found.add("completions told won whose answer is not the task's", f"{task_id} ({t.person})")
    for t in told:
        if t.action == "complete" and t.outcome == "lost" and end is not None and t.mark in end.output:
            found.add("tasks completed by someone told they lost", f"{task_id} ({t.person})")
        if t.action == "claim" and t.outcome == "won":
            life = task.claims.get(t.claim)
            if life is None or life.by != t.person:
                found.add("claims told won that were never stored", f"{task_id}#{t.claim} ({t.person})")
            elif not life.ends:
                found.add("claims told won that never ended", f"{task_id}#{t.claim} ({t.person})")
            elif isinstance(life.ends[0], Succeeded) and life.ends[0].worker not in {t.person, *facts.leads}:
                found.add(
                    "claims completed by someone neither the claimant nor a lead",
                    f"{task_id}#{t.claim} ({life.ends[0].worker})",
                )
        if t.action == "release" and t.outcome == "won":
            life = task.claims.get(t.claim)
            if life is None or not any(isinstance(e, Released) and e.by == t.person for e in life.ends):
                found.add("releases told won that were never stored", f"{task_id}#{t.claim} ({t.person})")


def check_humans(facts: HumanFacts, tasks: Facts) -> HumanCheck:
    """Judge the human tasks by the invariants above; the numbers, violations and notes."""
    found = _Found()
    notes: list[str] = []
    by_task: dict[str, list[Told]] = {}
    for t in facts.told:
        by_task.setdefault(t.task_id, []).append(t)
    told_claims = {
        (t.task_id, t.person, t.claim) for t in facts.told if t.action == "claim" and t.outcome == "won"
    }
    claims = renewals = lease_expiries = untold = 0
    folded = {task_id: lives(task_id, tasks.events.get(task_id, [])) for task_id in facts.kinds}
    for task_id, task in sorted(folded.items()):
        for wrong in task.violations:
            found.add("event histories out of order", wrong)
        if len(task.succeeded) != 1:
            found.add("tasks without exactly one task.succeeded", f"{task_id} ({len(task.succeeded)})")
        _check_record(found, task_id, tasks.records.get(task_id), task, facts.checked_at)
        _check_told(found, facts, task_id, by_task.get(task_id, []), task)
        claims += len(task.claims)
        renewals += sum(life.renewals for life in task.claims.values())
        for life in task.claims.values():
            by_lease = any(isinstance(e, Released) and e.by == LEASE_BY for e in life.ends)
            lease_expiries += by_lease
            if (task_id, life.by, life.number) not in told_claims:
                if by_lease:
                    untold += 1
                else:
                    found.add(
                        "claims stored that their claimant was never told of, not returned by a lease",
                        f"{task_id}#{life.number} ({life.by})",
                    )
    for task_id, person, number in facts.abandoned:
        abandoned = folded[task_id].claims.get(number) if task_id in folded else None
        if abandoned is None or not any(isinstance(e, Released) and e.by == LEASE_BY for e in abandoned.ends):
            found.add("abandoned claims their lease did not return", f"{task_id}#{number} ({person})")
    if facts.dead_letters:
        found.add("dead letters", f"{facts.dead_letters} in the DLQ")
    actions = Counter((t.action, t.outcome) for t in facts.told)
    won_by_lead = sum(
        1
        for task_id in facts.raced
        if any(
            t.action == "complete" and t.outcome == "won" and t.person in facts.leads
            for t in by_task.get(task_id, [])
        )
    )
    counts = Counts(
        tasks=len(facts.kinds),
        claims=claims,
        renewals=renewals,
        claims_lost=actions["claim", "lost"],
        releases=actions["release", "won"],
        lease_expiries=lease_expiries,
        completions=actions["complete", "won"],
        completions_lost=actions["complete", "lost"],
        races=len(facts.raced),
        won_by_lead=won_by_lead,
        untold=untold,
        unknown=sum(n for (_, outcome), n in actions.items() if outcome == "unknown"),
        asked_again=sum(1 for t in facts.told if t.tries > 1),
    )
    violations = found.lines()
    for number, what in (
        (counts.races, "no completion was raced"),
        (counts.releases, "nobody released a claim"),
        (counts.lease_expiries, "no lease ran out"),
    ):
        if not number:
            violations.append(f"{what}: that check could not fail")
    if untold:
        notes.append(
            f"{untold} claims their claimant never heard of (an answer lost), returned by their lease"
        )
    if counts.unknown:
        notes.append(f"{counts.unknown} requests of people had no answer within their patience")
    return HumanCheck(counts, violations, notes)
