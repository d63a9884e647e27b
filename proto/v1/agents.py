"""What the guard hands to the agents of a role."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from msgspec import Meta

from proto.base import Message
from proto.v1.budget import Reserve
from proto.v1.guard import Decision
from proto.v1.tasks import AttemptFailed, Failed, Succeeded, TaskRequest


class TaskAssignment(Message, frozen=True):
    """An allowed (possibly redacted) request, with the reservation that pays for it."""

    request: TaskRequest
    decision: Decision
    reservation_id: str = ""
    attempt: int = 1
    """Which attempt this is: 1, then one more for each retry the orchestrator hands out."""
    queued_seq: int = 0
    """Where the guard stored the task's Queued event in the events stream (0: not known). A worker starts
    the task only if nothing was stored on it since, without reading the task's events first; when
    something was, it reads them and decides as for any other delivery."""
    deferred: Reserve | None = None
    """The hold that pays for the task, when the budget had no room for it at admission (its tenant's ledger
    held as many open holds as it can): the dispatcher makes it before it hands the task over, and ends the
    task as failed (`budget`) if the money does not cover it then. `reservation_id` names it already."""


class FinishedWork(Message, frozen=True):
    """A task's work, done and stored before it is paid for: a worker that takes the task over after a crash
    or a budget outage pays for this and reports it instead of running the task again."""

    outcome: Succeeded | Failed | AttemptFailed
    """The outcome event as it will be published, but for its cost (the budget's charge fills it in); its
    `attempt` says which attempt did the work (a later attempt of the task does not report it). A failed
    attempt is stored as AttemptFailed; Failed is what workers stored before attempts were reported."""


class WorkerPresence(Message, frozen=True):
    """An agent's announcement that it serves a role (the `maestro_workers` bucket, key `<role>.<worker>`):
    when it last said so, and how many of the role's tasks it runs at once."""

    at: datetime
    slots: Annotated[int, Meta(ge=0)] = 0
    """Tasks of the role it runs at once (0: not said): the dispatcher hands no more over than free slots."""
