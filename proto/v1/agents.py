"""What the guard hands to the agents of a role."""

from __future__ import annotations

from proto.base import Message
from proto.v1.guard import Decision
from proto.v1.tasks import TaskRequest


class TaskAssignment(Message, frozen=True):
    """An allowed (possibly redacted) request, with the reservation that pays for it."""

    request: TaskRequest
    decision: Decision
    reservation_id: str = ""
