"""A human's decision on a parked task, and the parked task itself as the guard keeps it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from msgspec import Meta

from proto.base import Message
from proto.v1.guard import Decision
from proto.v1.ids import TaskId, Tenant
from proto.v1.tasks import TaskRequest

APPROVAL_TIMEOUT_BY = "approval-timeout"
"""The `by` of the rejection the orchestrator sends when nobody decided before the approval deadline."""


class ApprovalDecision(Message, frozen=True):
    """Someone approved or rejected a task that awaits approval; `by` names who, `at` says when."""

    task_id: TaskId
    tenant: Tenant
    approved: bool
    by: Annotated[str, Meta(max_length=256)] = ""
    reason: Annotated[str, Meta(max_length=4096)] = ""
    at: datetime | None = None


class Parked(Message, frozen=True):
    """A request the guard holds until a human decides: what would run, the verdict, and until when.

    `decided` is set (compare-and-set) by the one decision that wins; the entry stays a while as a
    tombstone so a late redelivery of the request cannot park the task again.
    """

    request: TaskRequest
    decision: Decision
    parked_at: datetime
    expires_at: datetime | None = None
    decided: ApprovalDecision | None = None
