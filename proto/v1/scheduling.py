"""How a tenant shares the agents with the other tenants: the policy bundle's `scheduling` section.

The guard validates it with the rest of the bundle; the orchestrator's dispatcher applies it, read from the
same bundle and reloaded with it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from msgspec import Meta

from proto.base import Message
from proto.v1.ids import Role, TaskId

Positive = Annotated[int, Meta(ge=1, le=1_000_000)]


class Scheduling(Message, frozen=True, forbid_unknown_fields=True):
    """A tenant's weight among the tenants waiting for a role, and the limits on how much of it it may use.

    A task held back by a limit waits (its record says why); it is never rejected for it.
    """

    weight: Annotated[int, Meta(ge=1, le=1000)] = 1
    """Its share of a role's agents among the tenants with tasks waiting at the same priority: a tenant of
    weight 2 gets two tasks started for every one of a tenant of weight 1."""
    max_running: Positive | None = None
    """Most of its tasks handed to agents and not yet ended, across roles (None: no limit)."""
    max_running_per_role: dict[Role, Positive] = {}
    """The same, per role."""
    starts_per_s: Annotated[float, Meta(gt=0, le=1_000_000)] | None = None
    """Most tasks started per second, on average (a token bucket; None: no limit)."""
    burst: Positive = 1
    """How many tasks may start at once after a quiet time, within `starts_per_s`."""


class WaitingTasks(Message, frozen=True):
    """A question to the dispatcher: why do these tasks still wait for their turn?"""

    task_ids: Annotated[list[TaskId], Meta(max_length=1000)]


class WaitReasons(Message, frozen=True):
    """The dispatcher's answer: for each task asked about that waits for its turn, why (one line); a task
    that does not wait there (handed over, ended, unknown) is left out."""

    reasons: dict[TaskId, str] = {}


class Written(Message, frozen=True):
    """A task record an orchestrator replica just wrote, as the leader's gauges of open tasks need it."""

    task_id: TaskId
    seq: int
    """The record's last event sequence: of two news of one task, the higher is the newer."""
    state: str
    role: str = ""
    deadline: datetime | None = None
    """When a running task's start-to-close time-out falls (None: none, or not running)."""


class LeaderNews(Message, frozen=True):
    """What an orchestrator replica that does not lead tells the one that does (core NATS, not stored) of
    the events and records it just folded: the leader's dispatcher frees slots by them, and its gauges of
    open tasks count them. A news lost on the way is made up for by the dispatcher's recount and the
    gauges' recheck (services/orchestrator/leading.py)."""

    started: list[TaskId] = []
    """Tasks whose agent reported its start."""
    freed: list[TaskId] = []
    """Tasks handed off to a person: their agent's slot is free, the task is not ended."""
    ended: list[TaskId] = []
    """Tasks that ended."""
    written: list[Written] = []
