"""Every subject, stream, durable, bucket and header name, each bound to the message type it carries."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Generic, TypeVar

from proto.v1 import (
    Commit,
    DeadLetter,
    GetLedger,
    LedgerView,
    Release,
    Reservation,
    Reserve,
    Role,
    Settlement,
    TaskAssignment,
    TaskEvent,
    TaskRequest,
)

M = TypeVar("M")
Req = TypeVar("Req")
Resp = TypeVar("Resp")

_TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")


class SubjectError(ValueError):
    """A subject token was empty or held a dot, wildcard or space."""


def _check_token(value: str) -> str:
    if not _TOKEN.match(value):
        raise SubjectError(f"not a valid subject token: {value!r}")
    return value


@dataclass(frozen=True)
class Topic(Generic[M]):
    """A family of subjects `<prefix>.<token>...` whose messages are all of type `type`."""

    prefix: str
    tokens: tuple[str, ...]
    type: type[M]
    description: str

    def subject(self, *values: str) -> str:
        """The concrete subject for these token values; raises SubjectError on a bad or missing token."""
        if len(values) != len(self.tokens):
            raise SubjectError(f"{self.prefix} takes {len(self.tokens)} tokens ({', '.join(self.tokens)})")
        return ".".join((self.prefix, *(_check_token(v) for v in values)))

    def filter(self, *values: str) -> str:
        """A subscription filter: given token values, then `*` for each missing one."""
        parts = [_check_token(v) for v in values] + ["*"] * (len(self.tokens) - len(values))
        return ".".join((self.prefix, *parts))

    def where(self, **named: str) -> str:
        """A subscription filter from named token values, `*` for the rest: `EVENTS.where(task_id=id)`."""
        unknown = set(named) - set(self.tokens)
        if unknown:
            raise SubjectError(f"{self.prefix} has no tokens {sorted(unknown)}")
        parts = [_check_token(named[t]) if t in named else "*" for t in self.tokens]
        return ".".join((self.prefix, *parts))

    @property
    def all(self) -> str:
        """The filter matching every subject of this topic."""
        return f"{self.prefix}.>"

    @property
    def pattern(self) -> str:
        """The subject with its tokens named, for documentation: `maestro.v1.req.{tenant}`."""
        return ".".join((self.prefix, *(f"{{{t}}}" for t in self.tokens)))

    def values(self, subject: str) -> tuple[str, ...]:
        """The token values of a concrete subject of this topic."""
        return tuple(subject[len(self.prefix) + 1 :].split("."))


@dataclass(frozen=True)
class Endpoint(Generic[Req, Resp]):
    """A request/reply subject: requests of type `request`, answers of type `response`."""

    subject: str
    name: str
    request: type[Req]
    response: type[Resp]
    description: str


# -- streams ---------------------------------------------------------------------------------------
REQUESTS: Topic[TaskRequest] = Topic(
    "maestro.v1.req", ("tenant",), TaskRequest, "task requests as submitted, judged by the guard"
)
TASKS: Topic[TaskAssignment] = Topic(
    "maestro.v1.task", ("role",), TaskAssignment, "tasks the guard allowed, pulled by the agents of a role"
)
EVENTS: Topic[TaskEvent] = Topic(
    "maestro.v1.evt",
    ("tenant", "task_id"),
    TaskEvent,  # type: ignore[arg-type]
    "every lifecycle event of every task: the audit log",
)
DLQ: Topic[DeadLetter] = Topic(
    "maestro.v1.dlq",
    ("origin",),
    DeadLetter,
    "messages that could not be decoded or handled, with the reason",
)

STREAM_REQUESTS = "MAESTRO_REQ"
STREAM_TASKS = "MAESTRO_TASK"
STREAM_EVENTS = "MAESTRO_EVT"
STREAM_DLQ = "MAESTRO_DLQ"

DURABLE_GUARD = "guard"
DURABLE_ORCHESTRATOR = "orchestrator"


def agents_durable(role: Role) -> str:
    """The durable consumer shared by every replica of one role's agents."""
    return f"agents-{role}"


# -- request/reply -----------------------------------------------------------------------------------
BUDGET_SERVICE = "budget"
BUDGET_RESERVE: Endpoint[Reserve, Reservation] = Endpoint(
    "maestro.v1.budget.reserve", "reserve", Reserve, Reservation, "hold an estimate for one task"
)
BUDGET_COMMIT: Endpoint[Commit, Settlement] = Endpoint(
    "maestro.v1.budget.commit", "commit", Commit, Settlement, "charge actual usage and release the hold"
)
BUDGET_RELEASE: Endpoint[Release, Settlement] = Endpoint(
    "maestro.v1.budget.release", "release", Release, Settlement, "release a hold without charging"
)
BUDGET_GET: Endpoint[GetLedger, LedgerView] = Endpoint(
    "maestro.v1.budget.get", "get", GetLedger, LedgerView, "read a tenant's ledger"
)

# -- key-value buckets and object store ----------------------------------------------------------------
BUCKET_TASKS = "maestro_tasks"
BUCKET_BUDGET = "maestro_budget"
BUCKET_POLICY = "maestro_policy"
STORE_ARTIFACTS = "maestro_artifacts"

# -- headers ---------------------------------------------------------------------------------------------
HEADER_MSG_ID = "Nats-Msg-Id"
HEADER_TRACEPARENT = "traceparent"
HEADER_ERROR = "Nats-Service-Error"
HEADER_ERROR_CODE = "Nats-Service-Error-Code"
HEADER_DLQ_REASON = "Maestro-Dlq-Reason"


def event_msg_id(task_id: str, slot: str) -> str:
    """The dedup id of an event stored once per task and slot (`accepted`, `verdict`, `outcome`)."""
    return f"{task_id}.{slot}"
