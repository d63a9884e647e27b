"""The HTTP API's own bodies: what its routes answer (and take) beyond the wire messages they carry.

A record, an event, a ledger or a token travels as the same Struct over HTTP as over NATS; these are the
answers only the HTTP API gives: a submission's receipt, a decision's, an error, the service's index.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from msgspec import Meta

from proto.base import Message
from proto.v1.budget import ModelScope, Window
from proto.v1.guard import Violation
from proto.v1.humans import Answer
from proto.v1.ids import MicroUsd, TaskId, Tenant, Tokens
from proto.v1.tasks import TaskRecord, TaskRequest


class ActionBody(Message, frozen=True):
    """The body of POST /v1/tasks/{id}/approve|reject|cancel and /v1/workflows/{id}/cancel|pause|resume: who
    acts and why (a rejection needs a reason). `by`, when given, must be the token's subject."""

    by: Annotated[str, Meta(max_length=256)] = ""
    reason: Annotated[str, Meta(max_length=4096)] = ""


class Submitted(Message, frozen=True):
    """202 to POST /v1/tasks and /v1/workflows: the id is queued (the same answer for a repeated one)."""

    id: str
    tenant: Tenant
    warning: str | None = None
    """Set when no worker serves the task's role now: the task waits for one, accepted."""


class Decided(Message, frozen=True):
    """202 to POST /v1/tasks/{id}/approve|reject: the decision is recorded; the task moves on from it."""

    id: TaskId
    tenant: Tenant
    approved: bool
    by: str


class CancelAccepted(Message, frozen=True):
    """202 to POST /v1/tasks/{id}/cancel: the task is cancelled (a running one is stopped)."""

    id: TaskId
    tenant: Tenant
    cancelled: Literal[True]
    by: str
    was: str
    """The state the task was in."""


class BudgetChange(Message, frozen=True):
    """The body of PUT /v1/budgets/{tenant}: SetBudget without its tenant, which the path names (a body may
    repeat it, never name another). Fields left out stay as they are."""

    tenant: Tenant | None = None
    scope: Literal["tenant", "role", "model"] = "tenant"
    name: ModelScope = ""
    limit_micro_usd: MicroUsd | None = None
    limit_tokens: Tokens | None = None
    remove: bool = False
    window: Window | None = None
    task_ceiling_micro_usd: MicroUsd | None = None
    carry_over: bool | None = None


class Problem(Message, frozen=True):
    """One thing wrong with a policy bundle: where (line, path) and what."""

    message: str
    line: int | None = None
    path: str | None = None


class ApiError(Message, frozen=True):
    """Every error the API answers, whatever its status: what went wrong and, when the request is at fault,
    which of its parts (`$.role` in the body, `limit` in the query, `id` in the path)."""

    error: str
    field: str | None = None
    scope: str | None = None
    """The scope the token lacks (403)."""
    state: str | None = None
    """The task's or workflow's state that made the request a conflict (409)."""
    status: str | None = None
    """`not ready` (503 from /readyz)."""
    problems: list[Problem] | None = None
    """What is wrong with a policy bundle (400, 409, 500 from /v1/policy)."""


class RetriedNow(Message, frozen=True):
    """202 to POST /v1/tasks/{id}/retry: the task's next attempt, which waited for its back-off, runs now."""

    id: TaskId
    tenant: Tenant
    attempt: int
    by: str
    was_due: datetime
    """When it would have run."""


class StreamedEvent(Message, frozen=True):
    """One Server-Sent Event of a followed stream of task events (text/event-stream), as its fields: what
    each event of GET /v1/tasks/{id}/events?follow=1 and GET /v1/events is."""

    id: str
    """The event's stream sequence: sent back as Last-Event-ID, the stream resumes after it."""
    event: str
    """The event's kind (`task.succeeded`)."""
    data: str
    """The task event itself, as JSON (a TaskEvent, whose `kind` is `event`)."""


class Identity(Message, frozen=True):
    """GET /v1/me: who the token is and what it may do (the console shows only the buttons it may use)."""

    subject: str
    tenant: str
    """The tenant the token acts in, or `*`: every tenant."""
    scopes: list[str]
    operator: bool
    """Administers every tenant: budgets, the policy bundle, people."""
    auth: bool = True
    """False when the API checks no tokens (MAESTRO_AUTH=off): everyone may do everything."""


class Index(Message, frozen=True):
    """GET /: which service answers, its version, and each path it serves with the methods it takes."""

    service: str
    version: str
    links: dict[str, list[str]]


class Health(Message, frozen=True):
    """GET /healthz: the process answers."""

    status: Literal["ok"]


class Readiness(Message, frozen=True):
    """GET /readyz when ready: the orchestrator can take and track tasks; roles without a worker are listed
    (their tasks wait, accepted)."""

    status: Literal["ready"]
    roles_without_worker: list[str] | None = None


class CompleteBody(Message, frozen=True):
    """The body of POST /v1/tasks/{id}/complete: the answer, field by field as the task's form asks (an
    approval: true or false; a choice: one of its choices; a text; a file: {name, content})."""

    answer: Answer
    by: Annotated[str, Meta(max_length=256)] = ""
    """With auth off only: who answers (with a token, its subject does)."""


class WorkView(Message, frozen=True):
    """GET /v1/inbox/{id}: a human task as the person doing it needs it: its record, the request as the guard
    admitted it (instructions in `prompt`, inputs in `context`, the form in `human`) and what the guard found
    (rules and places, never a secret); `request` is null once the task is no longer kept."""

    record: TaskRecord
    request: TaskRequest | None = None
    findings: list[Violation] = []
