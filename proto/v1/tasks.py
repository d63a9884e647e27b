"""Task requests, the lifecycle events every task emits, and the record they fold into."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from proto.base import Message
from proto.v1.budget import Usage
from proto.v1.guard import Decision
from proto.v1.ids import MicroUsd, Role, TaskId, Tenant, new_task_id


class ContextFile(Message, frozen=True):
    """A file handed to the task: its path in the workspace and its text."""

    path: Annotated[str, Meta(min_length=1, max_length=4096)]
    content: str = ""


class TaskRequest(Message, frozen=True):
    """A unit of work as submitted; `id` is the idempotency key (generated when absent)."""

    tenant: Tenant
    role: Role
    prompt: str
    id: TaskId = msgspec.field(default_factory=new_task_id)
    context: list[ContextFile] = []
    commands: list[str] = []
    model: str | None = None
    data_region: str | None = None
    data_classes: list[str] = []
    """Classes of data the task carries (`pii`, `health`): residency rules may cover only some."""
    max_cost_micro_usd: MicroUsd | None = None
    parent: TaskId | None = None
    labels: dict[str, str] = {}


class TaskClaim(Message, frozen=True):
    """Who owns a task id, stored when the id is first seen: one id is one task, forever, across tenants."""

    tenant: Tenant
    digest: str
    """A fingerprint of the request's content: the same id with other content is a conflict."""


TaskState = Literal[
    "pending",
    "rejected",
    "awaiting_approval",
    "queued",
    "running",
    "succeeded",
    "failed",
    "timed_out",
    "cancelled",
]
TERMINAL_STATES: frozenset[str] = frozenset({"rejected", "succeeded", "failed", "timed_out", "cancelled"})


class ArtifactRef(Message, frozen=True):
    """A file an agent stored in the artifact object store."""

    name: str
    size: int = 0
    digest: str = ""


class Event(Message, frozen=True, tag_field="kind"):
    """Fields every lifecycle event carries."""

    task_id: TaskId
    tenant: Tenant
    at: datetime


class Accepted(Event, frozen=True, tag="task.accepted"):
    """The guard took the request in; it carries what the task is, never its content."""

    role: Role
    parent: TaskId | None = None
    labels: dict[str, str] = {}
    model: str | None = None
    prompt_chars: int = 0
    context_files: int = 0
    commands: int = 0


class Rejected(Event, frozen=True, tag="task.rejected"):
    """The request will not run: the decision holds every violation."""

    decision: Decision
    reason: str = ""
    by: str = ""
    """Who rejected it when a human (or the approval timeout) did; empty when the guard did."""


class AwaitingApproval(Event, frozen=True, tag="task.awaiting_approval"):
    """A human must approve the request before it runs."""

    decision: Decision
    reason: str = ""
    expires_at: datetime | None = None
    """When the task is rejected if nobody has decided."""


class Queued(Event, frozen=True, tag="task.queued"):
    """The guard allowed the request and queued it for its role, with the budget held for it."""

    role: Role
    decision: Decision
    reservation_id: str = ""
    approved_by: str = ""
    """Who approved it, when the verdict asked a human."""
    approved_at: datetime | None = None


class Started(Event, frozen=True, tag="task.started"):
    """A worker pulled the task and began; attempt counts deliveries."""

    worker: str
    attempt: int = 1


class Heartbeat(Event, frozen=True, tag="task.heartbeat"):
    """The worker is still on it."""

    worker: str
    attempt: int = 1


class Succeeded(Event, frozen=True, tag="task.succeeded"):
    """The task finished; output is the role's result, artifacts are stored files."""

    worker: str
    output: str = ""
    usage: Usage | None = None
    cost_micro_usd: MicroUsd = 0
    artifacts: list[ArtifactRef] = []
    attempt: int = 1


class Failed(Event, frozen=True, tag="task.failed"):
    """The task could not finish; error says why."""

    error: str
    worker: str = ""
    usage: Usage | None = None
    cost_micro_usd: MicroUsd = 0
    attempt: int = 1


class Cancelled(Event, frozen=True, tag="task.cancelled"):
    """Someone cancelled the task."""

    by: str = ""
    reason: str = ""


class TimedOut(Event, frozen=True, tag="task.timed_out"):
    """The task ran out of time."""

    reason: str = ""


TaskEvent = (
    Accepted
    | Rejected
    | AwaitingApproval
    | Queued
    | Started
    | Heartbeat
    | Succeeded
    | Failed
    | Cancelled
    | TimedOut
)


class TaskRecord(Message, frozen=True):
    """The current state of one task, folded from its events by the orchestrator."""

    id: TaskId
    tenant: Tenant
    state: TaskState
    created_at: datetime
    updated_at: datetime
    role: Role | None = None
    parent: TaskId | None = None
    labels: dict[str, str] = {}
    model: str | None = None
    verdict: str | None = None
    violations: list[str] = []
    reason: str = ""
    reservation_id: str = ""
    worker: str = ""
    attempts: int = 0
    output: str = ""
    error: str = ""
    usage: Usage | None = None
    cost_micro_usd: MicroUsd = 0
    artifacts: list[ArtifactRef] = []
    started_at: datetime | None = None
    finished_at: datetime | None = None
    last_event_seq: int = 0
    approved_by: str = ""
    approved_at: datetime | None = None
    rejected_by: str = ""
