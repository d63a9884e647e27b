"""Who holds a human task, read from its events, and whether a person may claim, complete or release it
(pure: no I/O).

The events are the truth a claim is decided on: a claim, a release or a completion is stored only if no
event was stored on the task since the ones it was decided from (Streams.publish's `after_seq`), so two
people who claim at once, or complete at once, cannot both succeed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from proto.v1 import (
    ENDING_EVENTS,
    Accepted,
    AwaitingApproval,
    Claimed,
    Escalated,
    HandedOff,
    Queued,
    Released,
    TaskEvent,
    separate,
)
from proto.v1.humans import AnswerForm, HumanWork, Person, form_of
from proto.v1.ids import HUMAN_PREFIX, is_human, queue_of

Standing = Literal["unknown", "pending", "waiting", "claimed", "ended"]


@dataclass(frozen=True)
class Problem:
    """Why a person may not do what they asked: `status` 404 (no such task), 409 (not now: the task is not
    in a state for it) or 403 (not them)."""

    status: int
    text: str


@dataclass(frozen=True)
class Holding:
    """A task as its events tell it: where it stands, who holds it until when, and the last event's
    sequence (what the next write must find still last)."""

    task_id: str
    standing: Standing = "unknown"
    tenant: str = ""
    role: str = ""
    human: HumanWork | None = None
    claim: int = 0
    """Claims so far (the current one's number while claimed)."""
    by: str = ""
    """Who holds it while claimed; who ended it once ended."""
    lease_until: datetime | None = None
    last_seq: int = 0
    widened_to: tuple[str, ...] = ()
    """Queues a breached SLA also offered it to."""

    @property
    def queue(self) -> str:
        """The human queue it is in (`security`)."""
        return queue_of(self.role)

    @property
    def queues(self) -> tuple[str, ...]:
        """Every queue whose people may take it: its own, then those it was widened to."""
        return (self.queue, *self.widened_to)

    @property
    def form(self) -> AnswerForm:
        """The answer it expects."""
        return form_of(self.human)


def holding(task_id: str, stored: list[tuple[int, TaskEvent]]) -> Holding:
    """Fold a task's events (with their stream sequences, oldest first) into who holds it."""
    held = Holding(task_id)
    for seq, event in stored:
        for part in separate(event):  # an acceptance stored with its verdict is folded as both
            held = _fold(held, part)
        held = replace(held, last_seq=seq)
    return held


def _fold(held: Holding, event: TaskEvent) -> Holding:
    match event:
        case Accepted(role=role, human=human):
            return replace(held, tenant=event.tenant, role=role, human=human, standing="pending")
        case AwaitingApproval():
            return replace(held, standing="pending")
        case Queued():
            return replace(held, standing="waiting")
        case Claimed(by=by, lease_until=lease_until, claim=claim):
            return replace(held, standing="claimed", by=by, lease_until=lease_until, claim=claim)
        case Released():
            return replace(held, standing="waiting", by="", lease_until=None)
        case HandedOff(queue=queue, human=human):
            return replace(held, role=f"{HUMAN_PREFIX}{queue}", human=human, standing="waiting", by="")
        case Escalated(to=to) if to and to not in held.widened_to:
            return replace(held, widened_to=(*held.widened_to, to))
        case _ if isinstance(event, ENDING_EVENTS):
            ended_by = getattr(event, "worker", "") or getattr(event, "by", "")
            return replace(held, standing="ended", by=ended_by, lease_until=None)
    return held


@dataclass(frozen=True)
class Someone:
    """Who acts: their id (their token's subject), their record as a person (None: not one), and whether
    their token is an operator's or the tenant's admin (who may act for anyone, as a lead may)."""

    id: str
    person: Person | None
    admin: bool = False

    @property
    def leads(self) -> bool:
        """Whether they may complete or release others' claims (in their queues)."""
        return self.admin or (self.person is not None and self.person.lead)

    def serves(self, *queues: str) -> bool:
        """Whether they may take tasks of any of `queues`."""
        return self.admin or (self.person is not None and not set(queues).isdisjoint(self.person.skills))


def claim_problem(held: Holding, who: Someone, now: datetime, holds: int) -> Problem | None:
    """Why `who` may not claim the task now (`holds`: how many tasks they hold already), or None.

    Claiming a task one holds already renews the claim's lease."""
    if not is_human(held.role):
        return _not_human(held)
    if held.standing == "ended":
        return Problem(409, f"task {held.task_id} has ended")
    if held.standing == "pending":
        return Problem(
            409, f"task {held.task_id} is not queued yet (its verdict, or an approval, is pending)"
        )
    if not who.serves(*held.queues):
        return Problem(403, f"{who.id} does not serve the {held.queue} queue (not among their skills)")
    if held.standing == "claimed" and held.by != who.id:
        return Problem(409, f"task {held.task_id} is claimed by {held.by} until {_when(held.lease_until)}")
    person = who.person
    if person is not None and held.standing == "waiting":
        if not person.available:
            return Problem(403, f"{who.id} is marked unavailable")
        if person.hours is not None and not _at_work(person, now):
            return Problem(403, f"{who.id} is outside their working hours ({_hours(person)})")
        if holds >= person.capacity:
            return Problem(403, f"{who.id} already holds {holds} task(s), their capacity")
    return None


def finish_problem(held: Holding, who: Someone, now: datetime, doing: str) -> Problem | None:
    """Why `who` may not complete or release (`doing`) the task now, or None: only the claimant while
    their lease lasts, or a lead of the queue."""
    if not is_human(held.role):
        return _not_human(held)
    if held.standing == "ended":
        return Problem(409, f"task {held.task_id} has ended" + (f" (by {held.by})" if held.by else ""))
    if held.standing != "claimed":
        return Problem(409, f"task {held.task_id} is not claimed: claim it before you {doing} it")
    if held.by == who.id:
        if held.lease_until is not None and held.lease_until <= now:
            return Problem(
                409, f"your claim on {held.task_id} lapsed at {_when(held.lease_until)}: claim it again"
            )
        return None
    if who.leads and who.serves(*held.queues):
        return None
    lead = f"a lead of {held.queue}"
    return Problem(403, f"task {held.task_id} is claimed by {held.by}: only they, or {lead}, may {doing} it")


def _not_human(held: Holding) -> Problem:
    if held.standing == "unknown":
        return Problem(404, f"no task {held.task_id}")
    return Problem(409, f"task {held.task_id} is a {held.role} task, done by agents, not by people")


def _at_work(person: Person, now: datetime) -> bool:
    local = now.astimezone(ZoneInfo(person.timezone))
    return person.hours is None or person.hours.covers(local.isoweekday(), local.time())


def _hours(person: Person) -> str:
    hours = person.hours
    return "" if hours is None else f"{hours.start}-{hours.end} {person.timezone}"


def _when(at: datetime | None) -> str:
    return at.isoformat(timespec="seconds") if at is not None else "?"
