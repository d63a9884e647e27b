"""Task requests, the lifecycle events every task emits, and the record they fold into."""

from __future__ import annotations

from datetime import datetime
from pathlib import PurePosixPath
from typing import Annotated, Literal, get_args

import msgspec
from msgspec import Meta

from proto.base import Message
from proto.v1.budget import Usage
from proto.v1.guard import Decision, Violation
from proto.v1.humans import HandOff, HumanWork
from proto.v1.ids import (
    DEFAULT_PRIORITY,
    MicroUsd,
    ModelName,
    Priority,
    Role,
    TaskId,
    Tenant,
    is_human,
    new_task_id,
    role_problem,
)
from proto.v1.regions import jurisdiction_of

# A path inside the task's workspace: relative, no `..` segment, no control characters or backslashes.
# Checked in __post_init__ (for a message that says what is wrong); the pattern is for schema readers.
_WORKSPACE_PATH = r"^(?!/)(?!(?:[^/]*/)*\.\.(?:/|$))[^\x00-\x1f\x7f\\]+$"
_CONTROL = frozenset(chr(c) for c in (*range(0x20), 0x7F))


def workspace_path_problem(path: str) -> str | None:
    """Why `path` cannot name a file inside a task's workspace, or None when it can."""
    if path.startswith("/"):
        return "is absolute; give a path relative to the task's workspace"
    if ".." in path.split("/"):
        return "has a `..` segment, which would leave the task's workspace"
    if "\\" in path:
        return "has a backslash; separate directories with `/`"
    if any(ch in _CONTROL for ch in path):
        return "has a control character (NUL, newline, ...)"
    if not PurePosixPath(path).parts:
        return "names no file"
    return None


class ContextFile(Message, frozen=True):
    """A file handed to the task: its path in the workspace and its text."""

    path: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=4096,
            description="relative to the task's workspace: no leading `/`, no `..` segment, no control bytes",
            extra_json_schema={"pattern": _WORKSPACE_PATH},
        ),
    ]
    content: str = ""

    def __post_init__(self) -> None:
        problem = workspace_path_problem(self.path)
        if problem is not None:
            raise ValueError(f"context path {self.path[:200]!r} {problem}")


MAX_TIMEOUT_S = 30 * 86_400.0
"""The longest time-out a task may set: 30 days."""

TimeoutSeconds = Annotated[float, Meta(gt=0, le=MAX_TIMEOUT_S)]


class Timeouts(Message, frozen=True):
    """How long a task may wait and run; each one set is a durable timer, none is set by default.

    An agent that stops heartbeating loses its attempt after the agents' ack wait (`MAESTRO_ACK_WAIT_S`):
    the task goes back to the queue and the next worker's start counts a new delivery.
    """

    schedule_to_start_s: TimeoutSeconds | None = None
    """From queued to started: a task no agent takes up in time ends `timed_out` (its hold released)."""
    start_to_close_s: TimeoutSeconds | None = None
    """From started to its outcome: a task still running then is stopped and ends `timed_out`."""


FailureKind = Literal[
    "error",
    "crash",
    "lost",
    "timeout",
    "invalid_output",
    "test_failed",
    "policy",
    "cancelled",
    "budget",
    "model_refused",
]
"""Why an attempt failed. `error`: the role reported a failure; `crash`: the role raised; `lost`: its worker
went away; `timeout`: it ran out of time; `invalid_output`: the role's output did not validate;
`test_failed`: the tests it ran failed; `policy`: a policy stopped it; `cancelled`; `budget`: the budget
refused to pay for it; `model_refused`: the model server refused the call for good (a 4xx such as a bad key or
a prompt too long), so the same call would be refused again."""

NON_RETRYABLE: frozenset[str] = frozenset(
    {"invalid_output", "test_failed", "policy", "cancelled", "budget", "model_refused"}
)
"""Failure kinds that end a task at once: running it again would fail the same way."""

MAX_ATTEMPTS = 20


class RetryPolicy(Message, frozen=True):
    """How often and how soon a failed task runs again (Temporal's retry policy, in seconds).

    Attempt n+1 starts `min(initial_backoff_s * multiplier**(n-1), max_backoff_s)` after attempt n failed,
    give or take `jitter` of it (the same for the same task and attempt, so a redecided retry is the same).
    Failures of a kind in NON_RETRYABLE end the task at once.
    """

    max_attempts: Annotated[int, Meta(ge=1, le=MAX_ATTEMPTS)] = 3
    initial_backoff_s: Annotated[float, Meta(ge=0, le=MAX_TIMEOUT_S)] = 1.0
    multiplier: Annotated[float, Meta(ge=1, le=10)] = 2.0
    max_backoff_s: Annotated[float, Meta(ge=0, le=MAX_TIMEOUT_S)] = 300.0
    jitter: Annotated[float, Meta(ge=0, le=1)] = 0.2


class TaskRequest(Message, frozen=True):
    """A unit of work as submitted; `id` is the idempotency key (generated when absent)."""

    tenant: Tenant
    role: Role
    prompt: str
    id: TaskId = msgspec.field(default_factory=new_task_id)
    context: list[ContextFile] = []
    commands: list[str] = []
    model: ModelName | None = None
    """The model the task runs on and is billed for (None: the deployment's default model)."""
    data_region: (
        Annotated[
            str,
            Meta(
                max_length=64,
                description="a jurisdiction (ISO 3166-1 alpha-2, `uk`, `eu`, `eea`, `apac`), a cloud region, "
                "or `cloud:region`",
            ),
        ]
        | None
    ) = None
    data_classes: list[str] = []
    """Classes of data the task carries (`pii`, `health`): residency rules may cover only some."""
    tenant_data: bool = True
    """False: the task carries no tenant data (public code, synthetic fixtures): no residency pin applies."""
    data_tenants: list[Tenant] = []
    """Other tenants whose data the task touches: each one's residency pin must hold too."""
    max_cost_micro_usd: MicroUsd | None = None
    parent: TaskId | None = None
    labels: dict[str, str] = {}
    timeouts: Timeouts | None = None
    retry: RetryPolicy | None = None
    """None: one attempt; a failure ends the task."""
    expand: bool = False
    """A planner asked for subtasks: its output is a JSON Plan (proto/v1/workflows.py) its workflow runs."""
    priority: Priority = DEFAULT_PRIORITY
    """Within its role, higher priority runs first; tasks of equal priority share fairly by tenant."""
    human: HumanWork | None = None
    """For a human queue's task (`human:<queue>`): its form, lease and SLAs (None: approve or reject, with a
    comment; a 30-minute lease; no SLA). The prompt is the person's instructions."""
    hand_off: HandOff | None = None
    """For an agent's task: the human queue it goes to, instead of failing, when its agent cannot proceed
    (its last attempt failed with tests failing, an invalid answer, an error, or a model's refusal)."""

    def __post_init__(self) -> None:
        if problem := role_problem(self.role):
            raise ValueError(problem)
        if self.human is not None and not is_human(self.role):
            raise ValueError(f"human is only for a human queue's task (human:<queue>), not a {self.role}")
        if is_human(self.role) and (self.commands or self.expand or self.model or self.hand_off):
            raise ValueError(
                "a human queue's task runs no commands, expands no plan, uses no model, hands off to none"
            )
        if self.data_region is not None and jurisdiction_of(self.data_region) is None:
            raise ValueError(
                f"data_region {self.data_region!r} is neither a jurisdiction (an ISO 3166-1 alpha-2 code, "
                "`uk`, `eu`, `eea`, `apac`) nor a known AWS, GCP, Azure, OCI or Alibaba region"
            )
        if not self.tenant_data and (self.data_region or self.data_classes or self.data_tenants):
            raise ValueError(
                "tenant_data is false (the task carries no tenant data), so it cannot also name a "
                "data_region, data_classes or data_tenants"
            )


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
    trace_id: str | None = None
    """The W3C trace the request arrived with (or that started with it)."""
    prompt_chars: int = 0
    context_files: int = 0
    commands: int = 0
    timeouts: Timeouts | None = None
    """The request's time-outs, which the orchestrator arms as durable timers."""
    retry: RetryPolicy | None = None
    """The request's retry policy, which the orchestrator applies to failed attempts."""
    human: HumanWork | None = None
    """A human queue's task: its form, lease and SLAs, which the orchestrator keeps and enforces."""


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
    approval_reason: str = ""
    """Why they approved it, as they said."""
    accepted: Accepted | None = None
    """The task's acceptance, when the guard stored it with the verdict as one event (a task allowed at
    once): readers of a task's events are given it as the task.accepted event it stands for, before this one
    (`separate`)."""


class Started(Event, frozen=True, tag="task.started"):
    """A worker pulled the task and began `attempt` (1, then one more per retry); `delivery` counts how
    often this attempt was handed to a worker (more than once when a worker went away)."""

    worker: str
    attempt: int = 1
    delivery: int = 1


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
    rails: list[Violation] = []
    """What the output rails found in what the attempt produced (masked before it was stored): never the
    secret itself, only the rule and where (`output:<line>:<column>`, `files:<path>:<line>:<column>`)."""


class Failed(Event, frozen=True, tag="task.failed"):
    """The task could not finish; error says why."""

    error: str
    worker: str = ""
    failure: FailureKind = "error"
    usage: Usage | None = None
    cost_micro_usd: MicroUsd = 0
    attempt: int = 1
    rails: list[Violation] = []
    """What the output rails found in what the attempt produced (masked before it was stored): never the
    secret itself, only the rule and where (`output:<line>:<column>`, `files:<path>:<line>:<column>`)."""


class AttemptFailed(Event, frozen=True, tag="task.attempt_failed"):
    """A worker's attempt failed (and was paid for): the orchestrator retries the task or fails it."""

    error: str
    worker: str = ""
    failure: FailureKind = "error"
    usage: Usage | None = None
    cost_micro_usd: MicroUsd = 0
    attempt: int = 1
    rails: list[Violation] = []
    """What the output rails found in what the attempt produced (masked before it was stored): never the
    secret itself, only the rule and where (`output:<line>:<column>`, `files:<path>:<line>:<column>`)."""


class Retrying(Event, frozen=True, tag="task.retrying"):
    """The orchestrator will run the task again: `attempt` is handed to the agents at `next_at`."""

    attempt: int
    next_at: datetime
    error: str = ""
    reservation_id: str = ""
    """The hold that pays for the attempt."""


class Claimed(Event, frozen=True, tag="task.claimed"):
    """A person took a human queue's task (or renewed their claim): nobody else may, until `lease_until`."""

    by: str
    """The person, as their token names them."""
    lease_until: datetime
    claim: int = 1
    """Which claim of the task this is (1, then one more each time it is claimed after a release)."""


class Released(Event, frozen=True, tag="task.released"):
    """A claim ended without an answer: the task is back in its queue."""

    by: str
    """Who let it go: the claimant, a lead, or `lease` when the lease ran out."""
    claim: int = 1
    reason: str = ""


HANDS_OFF: frozenset[str] = frozenset({"error", "crash", "invalid_output", "test_failed", "model_refused"})
"""Failure kinds a person can judge: a task with a hand-off goes to its human queue after its last attempt
failed so (not one cancelled, timed out, lost, refused by policy or by the budget)."""


class HandedOff(Event, frozen=True, tag="task.handed_off"):
    """The agent could not proceed and handed the task to a human queue: its role is `human:<queue>` from
    now on, its attempt's usage is paid, and what the agent produced is among the person's inputs."""

    worker: str
    queue: str
    reason: str
    human: HumanWork = HumanWork()
    usage: Usage | None = None
    cost_micro_usd: MicroUsd = 0
    attempt: int = 1


SlaKind = Literal["claim", "complete"]
"""A human task's SLAs: the time to claim it (from queued) and to complete it (from a claim)."""


class Escalated(Event, frozen=True, tag="task.escalated"):
    """A human task breached an SLA (once per SLA): what its policy did about it (notify the notifier; also
    offer it to `to`'s people; or fail it)."""

    sla: SlaKind
    action: Literal["notify", "widen", "fail"] = "notify"
    to: str | None = None
    """The queue it was widened to (`widen`)."""
    reason: str = ""


class Cancelled(Event, frozen=True, tag="task.cancelled"):
    """Someone cancelled the task (the orchestrator records it): it will not run, or is stopped."""

    by: str = ""
    reason: str = ""


class TimedOut(Event, frozen=True, tag="task.timed_out"):
    """The task ran out of time (the orchestrator decides it when a timer fires): it is stopped."""

    reason: str = ""
    timer: str = ""
    """Which time-out ended it: `schedule_to_start` or `start_to_close`."""


TimerKind = Literal["approval", "schedule_to_start", "start_to_close", "lease", "claim_sla", "complete_sla"]


class TimerFired(Event, frozen=True, tag="task.timer_fired"):
    """A durable timer the orchestrator armed came due (JetStream stored it at `at`, its due time).

    A timer for a task that has moved on (decided, started, ended) changes nothing.
    """

    timer: TimerKind
    attempt: int = 0
    """The attempt it was armed for (start_to_close), the claim (lease), 0 when it concerns the whole task."""


ENDING_EVENTS = (Rejected, Succeeded, Failed, Cancelled, TimedOut)
"""The events after which a task never runs again (each moves it to a terminal state)."""

TaskEvent = (
    Accepted
    | Rejected
    | AwaitingApproval
    | Queued
    | Started
    | Heartbeat
    | Succeeded
    | Failed
    | AttemptFailed
    | Retrying
    | Cancelled
    | TimedOut
    | TimerFired
    | Claimed
    | Released
    | Escalated
    | HandedOff
)


def separate(event: TaskEvent) -> tuple[TaskEvent, ...]:
    """The events one stored event stands for, in order: a Queued that carries its task's acceptance is the
    task.accepted event, then itself without it; any other event is itself."""
    if isinstance(event, Queued) and event.accepted is not None:
        return event.accepted, msgspec.structs.replace(event, accepted=None)
    return (event,)


EVENT_KINDS: frozenset[str] = frozenset(str(t.__struct_config__.tag) for t in get_args(TaskEvent))
"""Every kind of task event, as the wire names it (`task.succeeded`)."""
EVENT_KIND_PATTERN = "^(" + "|".join(sorted(k.replace(".", "\\.") for k in EVENT_KINDS)) + ")$"


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
    approval_reason: str = ""
    rejected_by: str = ""
    trace_id: str | None = None
    """The W3C trace id of the request: find the task's spans and log lines by it."""
    timeouts: Timeouts | None = None
    queued_at: datetime | None = None
    cancelled_by: str = ""
    retry: RetryPolicy | None = None
    deliveries: int = 0
    """How often the current attempt was handed to a worker."""
    next_retry_at: datetime | None = None
    estimate_micro_usd: MicroUsd = 0
    """What the guard estimated and held for one attempt (a retry holds it again)."""
    max_plan_subtasks: int | None = None
    """A planner asked to expand: the most subtasks its plan may add, by the tenant's bundle."""
    rails: list[Violation] = []
    """What the output rails found in what the task's attempts produced, every attempt's (each masked)."""
    human: HumanWork | None = None
    """A human queue's task: its form, lease and SLAs."""
    lease_until: datetime | None = None
    """While a person holds the task (`worker`): when their claim lapses unless renewed."""
    claims: int = 0
    """How often the task was claimed."""
    escalations: list[SlaKind] = []
    """The SLAs a human task breached (each escalated once)."""
    widened_to: list[str] = []
    """Queues a breached SLA also offered a human task to."""
