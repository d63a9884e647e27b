"""Human work on the mesh: a person's inbox, and their claims, completions and releases of human tasks.

Each change is one event stored on the task's subject only if nothing was stored there since the events it
was decided from (maestro/desk/holding.py): of two people who claim (or complete) at once, one wins and the
other is told who did; a change retried after a crash finds its own event and changes nothing again. The
API and the CLI both act through a Desk, as the person whose token they were given.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from nats.js.errors import KeyNotFoundError

from maestro import codec, history, topics
from maestro.access.grants import Caller
from maestro.bus import Bus
from maestro.desk.holding import Holding, Someone, claim_problem, finish_problem, holding
from maestro.desk.people import PeopleStore
from maestro.errors import MaestroError, WrongRevision
from maestro.policy.policies.credentials import mask_text
from maestro.scan import current_entries
from proto.v1 import Claimed, Released, Succeeded, TaskAssignment, TaskRecord, TaskState
from proto.v1.humans import Answer, answer_problem
from proto.v1.ids import is_human, queue_of

log = logging.getLogger(__name__)

LEASE_BY = "lease"
"""Who releases a claim whose lease ran out."""
ATTEMPTS = 8
"""How often a change is decided again after another was stored first, before the caller is told to retry."""
_OPEN: frozenset[TaskState] = frozenset({"queued", "running"})
E = TypeVar("E", Claimed, Released, Succeeded)


class DeskError(MaestroError):
    """What a person may not do, with the HTTP status that says so (403, 404, 409, 400, 503)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Work:
    """A human task as the person doing it sees it: its record and what the guard admitted (the
    instructions, the inputs, the form); None when the task is not (or no longer) kept."""

    record: TaskRecord
    assignment: TaskAssignment | None


class _AlreadyDone(Exception):
    """The caller completed the task already: a retry, answered with that completion."""


class Desk:
    """Human work done through one bus, as the caller each call names."""

    def __init__(
        self, bus: Bus, people: PeopleStore, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self._bus = bus
        self._people = people
        self._clock = clock

    async def someone(self, caller: Caller) -> Someone:
        """Who the caller is as a worker: their person record (by their token's subject), and whether their
        token administers (an admin acts as a lead of every queue)."""
        return Someone(caller.subject, await self._people.get(caller.subject), admin="admin" in caller.scopes)

    async def inbox(self, caller: Caller, queue: str | None = None) -> list[TaskRecord]:
        """The human tasks the caller may take or holds, waiting or claimed, oldest first: of the tenants
        their token sees, in the queues they serve (or `queue` only)."""
        who = await self.someone(caller)
        found = []
        async for record in self._records():
            role = record.role or ""
            if record.state not in _OPEN or not is_human(role) or not caller.sees(record.tenant):
                continue
            queues = (queue_of(role), *record.widened_to)
            if (queue is None or queue in queues) and who.serves(*queues):
                found.append(record)
        return sorted(found, key=lambda r: (r.queued_at or r.created_at, r.id))

    async def work(self, caller: Caller, task_id: str) -> Work:
        """What a person needs to do the task: its record, instructions, inputs and form."""
        record = await self._record(task_id)
        if record is None or not caller.sees(record.tenant) or not is_human(record.role or ""):
            raise DeskError(404, f"no human task {task_id}")
        try:
            entry = await (await self._bus.js.key_value(topics.BUCKET_HUMAN_TASKS)).get(task_id)
        except KeyNotFoundError:
            return Work(record, None)
        return Work(record, codec.decode(TaskAssignment, entry.value) if entry.value else None)

    async def claim(self, caller: Caller, task_id: str) -> Claimed:
        """Take the task for its lease (exclusively), or renew the caller's claim on it."""
        who = await self.someone(caller)

        async def decide(held: Holding, now: datetime) -> Claimed:
            holds = 0 if held.standing == "claimed" else await self._held_by(who.id)
            if problem := claim_problem(held, who, now, holds):
                raise DeskError(problem.status, problem.text)
            lease_s = held.human.lease_s if held.human is not None else 1800.0
            number = held.claim if held.standing == "claimed" else held.claim + 1
            return Claimed(
                task_id=task_id,
                tenant=held.tenant,
                at=now,
                by=who.id,
                lease_until=now + timedelta(seconds=lease_s),
                claim=number,
            )

        return await self._change(caller, task_id, decide)

    async def release(self, caller: Caller, task_id: str, reason: str = "") -> Released:
        """Give the task back to its queue (the claimant, or a lead of its queue)."""
        who = await self.someone(caller)

        async def decide(held: Holding, now: datetime) -> Released:
            if problem := finish_problem(held, who, now, "release"):
                raise DeskError(problem.status, problem.text)
            why = reason or ("released" if who.id == held.by else f"released by {who.id}, a lead")
            return Released(
                task_id=task_id, tenant=held.tenant, at=now, by=who.id, claim=held.claim, reason=why
            )

        return await self._change(caller, task_id, decide)

    async def complete(self, caller: Caller, task_id: str, answer: Answer) -> Succeeded:
        """End the task with the caller's answer (validated against its form), which becomes its output.

        Completed already by the caller (a retry), it answers the same completion again."""
        who = await self.someone(caller)

        async def decide(held: Holding, now: datetime) -> Succeeded:
            if held.standing == "ended" and held.by == who.id:
                raise _AlreadyDone
            if problem := finish_problem(held, who, now, "complete"):
                raise DeskError(problem.status, problem.text)
            if misfit := answer_problem(held.form, answer):
                raise DeskError(400, f"the answer does not fit the task's form: {misfit}")
            # A person's answer is scanned like an agent's output: no credential reaches the record.
            output = mask_text(codec.encode(answer).decode())
            return Succeeded(task_id=task_id, tenant=held.tenant, at=now, worker=who.id, output=output)

        try:
            return await self._change(caller, task_id, decide, msg_id=topics.end_msg_id(task_id))
        except _AlreadyDone:
            stored = await history.read_stored(self._bus.js, task_id)
            done = [e for _, e in stored if isinstance(e, Succeeded) and e.worker == who.id]
            if not done:
                raise DeskError(409, f"task {task_id} has ended (by {who.id})") from None
            return done[-1]

    async def expire(self, tenant: str, task_id: str, claim: int) -> Released | None:
        """Return the task to its queue if claim `claim` is still held and its lease has run out; None when
        it was renewed, completed or released meanwhile."""
        for _ in range(ATTEMPTS):
            held = holding(task_id, await history.read_stored(self._bus.js, task_id))
            now = self._clock()
            lapsed = held.lease_until is not None and held.lease_until <= now
            if held.standing != "claimed" or held.claim != claim or not lapsed:
                return None
            released = Released(
                task_id=task_id,
                tenant=tenant,
                at=now,
                by=LEASE_BY,
                claim=claim,
                reason=f"{held.by}'s lease ran out: nobody completed or renewed the claim",
            )
            try:
                await self._store(released, held)
            except WrongRevision:
                continue
            return released
        raise DeskError(503, f"task {task_id} kept changing while its lease was being ended; try again")

    async def _change(
        self,
        caller: Caller,
        task_id: str,
        decide: Callable[[Holding, datetime], Awaitable[E]],
        msg_id: str | None = None,
    ) -> E:
        for _ in range(ATTEMPTS):
            held = holding(task_id, await history.read_stored(self._bus.js, task_id))
            if held.standing == "unknown" or not caller.sees(held.tenant):
                raise DeskError(404, f"no task {task_id}")
            if not caller.may("work", held.tenant):
                raise DeskError(403, f"{caller.subject}'s token may not do human work in {held.tenant}")
            event = await decide(held, self._clock())
            try:
                await self._store(event, held, msg_id)
            except WrongRevision:
                continue  # something was stored on the task meanwhile: decide again on what it is now
            done = type(event).__name__.lower()
            log.info(
                "%s %s %s", caller.subject, done, task_id, extra={"task_id": task_id, "tenant": held.tenant}
            )
            return event
        raise DeskError(503, f"task {task_id} kept changing while you acted on it; try again")

    async def _store(
        self, event: Claimed | Released | Succeeded, held: Holding, msg_id: str | None = None
    ) -> None:
        await self._bus.streams.publish(
            topics.EVENTS.at(event.tenant, event.task_id), event, after_seq=held.last_seq, msg_id=msg_id
        )

    async def _record(self, task_id: str) -> TaskRecord | None:
        try:
            entry = await (await self._bus.js.key_value(topics.BUCKET_TASKS)).get(task_id)
        except KeyNotFoundError:
            return None
        return codec.decode(TaskRecord, entry.value) if entry.value else None

    async def _held_by(self, person_id: str) -> int:
        """How many human tasks `person_id` holds now, as the records say."""
        held = 0
        async for record in self._records():
            if record.state == "running" and record.worker == person_id and is_human(record.role or ""):
                held += 1
        return held

    async def _records(self) -> AsyncIterator[TaskRecord]:
        """Every task's record, read from the whole bucket (as `maestro ls` reads it)."""
        async for entry in current_entries(self._bus.js, topics.BUCKET_TASKS):
            yield codec.decode(TaskRecord, entry.value)
