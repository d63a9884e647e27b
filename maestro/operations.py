"""The HTTP API's operations: every route's method, path, body, answers and the scope its token needs.

This is the HTTP twin of maestro/topics.py: the orchestrator registers each route from its Operation
(`maestro.http.route`), maestro/openapi.py writes the OpenAPI document from the same table, and the SDK
parity test reads each operation's SDK call and CLI command from it. A route that is not here does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from msgspec import Meta

from maestro.listing import MAX_LIMIT, Page
from proto.v1 import (
    BudgetHistory,
    Claimed,
    LedgerView,
    Released,
    Succeeded,
    TaskEvent,
    TaskRecord,
    TaskRequest,
)
from proto.v1.access import GrantTenant, IssuedToken, Scope, TokenId, TokenRequest, TokenView
from proto.v1.api import (
    ActionBody,
    ApiError,
    BudgetChange,
    CancelAccepted,
    CompleteBody,
    Decided,
    Health,
    Identity,
    Index,
    Readiness,
    RetriedNow,
    StreamedEvent,
    Submitted,
    WorkView,
)
from proto.v1.gates import Commit, GateAnswer, MaxAge, Repo
from proto.v1.guard import DecisionHistory, PolicyInForce
from proto.v1.humans import Person, PersonId
from proto.v1.ids import QueueName, Role, TaskId, Tenant
from proto.v1.reviews import GithubWebhook, HookAnswer
from proto.v1.tasks import EVENT_KIND_PATTERN
from proto.v1.workflows import WORKFLOW_ID_PATTERN, Workflow, WorkflowRecord

Method = Literal["GET", "POST", "PUT", "DELETE"]
Where = Literal["path", "query", "header"]
TokenScope = Scope

JSON = "application/json"
YAML = "application/yaml"
EVENT_STREAM = "text/event-stream"

WorkflowId = Annotated[str, Meta(pattern=WORKFLOW_ID_PATTERN, description="workflow id")]
Traceparent = Annotated[
    str,
    Meta(
        description="W3C trace context; a trace starts here when none is given, or one that is malformed (a "
        "malformed one is ignored, as W3C Trace Context says, never refused)",
    ),
]


@dataclass(frozen=True)
class Param:
    """One parameter of an operation, typed as msgspec would decode it."""

    name: str
    where: Where
    type: Any
    description: str
    required: bool = False
    repeated: bool = False
    """A query parameter that may be given several times (`?label=a:1&label=b:2`)."""


@dataclass(frozen=True)
class Answer:
    """One answer an operation gives: its status, what it means, and its body's type (None: no body)."""

    status: int
    description: str
    body: Any = ApiError
    media: str = JSON
    headers: tuple[str, ...] = ()
    """Response headers worth naming (`WWW-Authenticate` on a 401, `Allow` on a 405)."""


@dataclass(frozen=True)
class Operation:
    """One route of the API and everything a client needs to call it."""

    id: str
    """The operationId: unique, stable, camelCase (generated clients name their methods after it)."""
    method: Method
    path: str
    summary: str
    tag: str
    answers: tuple[Answer, ...]
    scope: TokenScope | None = None
    """The scope a token needs in the tenant the call touches; None: no token needed."""
    operator: bool = False
    """Needs an operator's token (tenant `*`, scope admin)."""
    any_token: bool = False
    """Needs a valid token, whatever its scopes (`scope` is None)."""
    body: Any = None
    body_media: str = JSON
    body_required: bool = True
    params: tuple[Param, ...] = ()
    sdk: str | None = None
    """The `maestro.client.Client` method that does the same over NATS."""
    cli: str | None = None
    """The `maestro` command that does the same (`token create`)."""
    no_sdk: str | None = None
    """Why the SDK (and CLI) has no call for it, when it has none."""
    description: str = ""
    examples: dict[str, Any] = field(default_factory=dict)
    """Request body examples by name."""

    @property
    def guarded(self) -> bool:
        return self.scope is not None or self.any_token


def _fails(*answers: tuple[int, str]) -> tuple[Answer, ...]:
    return tuple(Answer(status, text) for status, text in answers)


UNAUTHORIZED = Answer(
    401, "no token, or one that is unknown, revoked or expired", headers=("WWW-Authenticate",)
)
UNAVAILABLE = Answer(503, "NATS (or the budget service) did not answer in time; try again")
BAD = (400, "the request is malformed; `field` names the part at fault")
FORBIDDEN = (403, "the token lacks the scope this needs in that tenant; `scope` names it")
TOO_LARGE = (413, "the body is over the request size limit")
_COMMON = (UNAUTHORIZED, UNAVAILABLE)

_TASK_ID = Param("id", "path", TaskId, "the task's id", required=True)
_WORKFLOW_ID = Param("id", "path", WorkflowId, "the workflow's id", required=True)
_TENANT_PATH = Param("tenant", "path", Tenant, "the tenant", required=True)
_TRACEPARENT = Param("traceparent", "header", Traceparent, "W3C trace context of the caller")
_LAST_EVENT_ID = Param(
    "Last-Event-ID",
    "header",
    Annotated[str, Meta(pattern=r"^[0-9]+$")],
    "resume a followed stream after this event's id (a stream sequence)",
)
MAX_FOLLOWED_TASKS = 64
"""The most tasks one followed stream of events names (a workflow has at most 64 steps)."""


def _listing(kind: str, *, roles: bool) -> tuple[Param, ...]:
    params = [
        Param("tenant", "query", Tenant, f"only this tenant's {kind} (a tenant's token sees its own only)"),
        Param(
            "state",
            "query",
            str,
            f"only {kind} in this state; several (repeated, or comma-separated) mean any of them",
            repeated=True,
        ),
        Param(
            "label",
            "query",
            Annotated[str, Meta(pattern=r"^[^:]+:.*$")],
            "KEY:VALUE: only those carrying this label; repeated, all of them",
            repeated=True,
        ),
        Param("limit", "query", Annotated[int, Meta(ge=1, le=MAX_LIMIT)], "at most this many a page (50)"),
        Param(
            "since",
            "query",
            str,
            f"only {kind} created at or after this: an ISO 8601 time with its zone, or a span ago (`1h`)",
        ),
        Param("cursor", "query", str, "the `next_cursor` of the page before"),
    ]
    if roles:
        params.insert(
            2, Param("role", "query", Role, "only tasks of this role (an agent role, or human:<queue>)")
        )
    return tuple(params)


def _task_action(action: str, summary: str, answer: Answer, *, scope: TokenScope, sdk: str) -> Operation:
    return Operation(
        id=f"{action}Task",
        method="POST",
        path=f"/v1/tasks/{{id}}/{action}",
        summary=summary,
        tag="tasks",
        scope=scope,
        body=ActionBody,
        body_required=False,
        params=(_TASK_ID,),
        answers=(
            answer,
            Answer(*BAD),
            Answer(*FORBIDDEN),
            Answer(404, "no such task (or another tenant's)"),
            Answer(409, "the task is not in a state this applies to; `state` says which it is in"),
            Answer(*TOO_LARGE),
            *_COMMON,
        ),
        sdk=sdk,
        cli=action,
    )


def _workflow_action(action: str, summary: str) -> Operation:
    return Operation(
        id=f"{action}Workflow",
        method="POST",
        path=f"/v1/workflows/{{id}}/{action}",
        summary=summary,
        tag="workflows",
        scope="submit",
        body=ActionBody,
        body_required=False,
        params=(_WORKFLOW_ID,),
        answers=(
            Answer(200, "the workflow's record after the change", WorkflowRecord),
            Answer(*BAD),
            Answer(*FORBIDDEN),
            Answer(404, "no such workflow (or another tenant's)"),
            Answer(409, "the workflow has ended; `state` says how"),
            Answer(*TOO_LARGE),
            *_COMMON,
        ),
        sdk=f"{action}_workflow",
        cli=f"workflow {action}",
    )


_NOT_SDK = "an HTTP probe of the service itself; the SDK talks to the mesh over NATS"

SUBMIT_TASK = Operation(
    id="submitTask",
    method="POST",
    path="/v1/tasks",
    summary="Submit a task: the guard judges it, then it is queued for its role",
    tag="tasks",
    scope="submit",
    body=TaskRequest,
    params=(_TRACEPARENT,),
    answers=(
        Answer(202, "queued for the guard (the same answer when the same request comes again)", Submitted),
        Answer(*BAD),
        Answer(*FORBIDDEN),
        Answer(409, "the id is another task's (other content, or another tenant's)"),
        Answer(*TOO_LARGE),
        *_COMMON,
    ),
    sdk="submit",
    cli="submit",
    examples={
        "tester": {
            "id": "task-0001",
            "tenant": "acme",
            "role": "tester",
            "prompt": "run the unit tests",
            "commands": ["pytest -q"],
        }
    },
)
LIST_TASKS = Operation(
    id="listTasks",
    method="GET",
    path="/v1/tasks",
    summary="List task records, newest first, passing every filter given",
    tag="tasks",
    scope="read",
    params=_listing("tasks", roles=True),
    answers=(
        Answer(200, "one page of records", Page[TaskRecord]),
        Answer(*BAD),
        Answer(*FORBIDDEN),
        *_COMMON,
    ),
    sdk="tasks",
    cli="ls",
)
GET_TASK = Operation(
    id="getTask",
    method="GET",
    path="/v1/tasks/{id}",
    summary="A task's record: its state, decision, usage and output",
    tag="tasks",
    scope="read",
    params=(_TASK_ID,),
    answers=(
        Answer(200, "the record", TaskRecord),
        Answer(*BAD),
        Answer(*FORBIDDEN),
        Answer(404, "no such task (or another tenant's)"),
        *_COMMON,
    ),
    sdk="get",
    cli="status",
)
GET_TASK_ARTIFACT = Operation(
    id="getTaskArtifact",
    method="GET",
    path="/v1/tasks/{id}/artifacts/{n}",
    summary="One of the files a task stored (its record's `artifacts[n]`), as a download",
    tag="tasks",
    scope="read",
    params=(
        _TASK_ID,
        Param(
            "n",
            "path",
            Annotated[int, Meta(ge=0, le=9999)],
            "its place in the record's artifacts",
            required=True,
        ),
    ),
    answers=(
        Answer(
            200,
            "the file's bytes, as the agent stored them (masked by the output rails)",
            str,
            "application/octet-stream",
        ),
        Answer(*BAD),
        Answer(*FORBIDDEN),
        Answer(404, "no such task (or another tenant's), or no such artifact"),
        *_COMMON,
    ),
    no_sdk="the files are in the object store maestro_artifacts, under the names the record gives",
)
GET_TASK_EVENTS = Operation(
    id="getTaskEvents",
    method="GET",
    path="/v1/tasks/{id}/events",
    summary="A task's events in order; with follow=1, each new one as Server-Sent Events until it ends",
    tag="tasks",
    scope="read",
    params=(
        _TASK_ID,
        Param("follow", "query", Literal["0", "1"], "1: stream the events (text/event-stream) until it ends"),
        _LAST_EVENT_ID,
    ),
    answers=(
        Answer(200, "the events so far", list[TaskEvent]),
        Answer(
            200,
            "followed: `id:` the sequence, `event:` the kind, `data:` the event",
            StreamedEvent,
            EVENT_STREAM,
        ),
        Answer(*BAD),
        Answer(*FORBIDDEN),
        Answer(404, "no such task (or another tenant's)"),
        *_COMMON,
    ),
    sdk="events",
    cli="watch",
)
FOLLOW_EVENTS = Operation(
    id="followEvents",
    method="GET",
    path="/v1/events",
    summary="Every task event the token may see, as Server-Sent Events, from now (or after Last-Event-ID) on",
    tag="tasks",
    scope="read",
    params=(
        Param("tenant", "query", Tenant, "only this tenant's events (a tenant's token sees its own only)"),
        Param(
            "task",
            "query",
            TaskId,
            f"only these tasks' events (repeated, at most {MAX_FOLLOWED_TASKS}; with `tenant`)",
            repeated=True,
        ),
        Param(
            "kind",
            "query",
            Annotated[str, Meta(pattern=EVENT_KIND_PATTERN)],
            "only events of these kinds (`task.succeeded`; repeated)",
            repeated=True,
        ),
        _LAST_EVENT_ID,
    ),
    answers=(
        Answer(
            200,
            "`id:` the sequence, `event:` the kind, `data:` the event, until the client goes",
            StreamedEvent,
            EVENT_STREAM,
        ),
        Answer(*BAD),
        Answer(*FORBIDDEN),
        *_COMMON,
    ),
    no_sdk="a live view for pages and dashboards; the SDK follows one task (`events`) or reads the stream",
    description="What the console's pages update from: no polling. A client that lost the stream resumes "
    "with `Last-Event-ID` and misses nothing the stream still holds.",
)
RETRY_TASK = _task_action(
    "retry",
    "Run a task that waits for its next attempt now, instead of when its back-off ends",
    Answer(202, "the next attempt is handed to the agents now", RetriedNow),
    scope="submit",
    sdk="retry_now",
)
APPROVE_TASK = _task_action(
    "approve",
    "Approve a task awaiting approval (the first decision counts)",
    Answer(202, "the approval is recorded", Decided),
    scope="approve",
    sdk="approve",
)
REJECT_TASK = _task_action(
    "reject",
    "Reject a task awaiting approval, with a reason",
    Answer(202, "the rejection is recorded", Decided),
    scope="approve",
    sdk="reject",
)
CANCEL_TASK = _task_action(
    "cancel",
    "Cancel a task that has not ended; a running one is stopped",
    Answer(202, "the task is cancelled", CancelAccepted),
    scope="submit",
    sdk="cancel",
)

_NOT_PERSON_SDK = (
    "a person acts as themselves, by their own token: through this API or `maestro inbox|claim|complete|"
    "release` with MAESTRO_TOKEN_FILE; the SDK's admin connection is nobody's"
)
_HUMAN_ANSWERS = (
    Answer(*BAD),
    Answer(
        403,
        "not the token's to do: its scope lacks work, the person lacks the queue's skill, is away, "
        "at capacity, or not the claimant (nor a lead)",
    ),
    Answer(404, "no such task (or another tenant's)"),
    Answer(409, "not now: the task is not waiting (to claim) or claimed (to complete or release), or ended"),
    Answer(*TOO_LARGE),
    *_COMMON,
)


def _human_action(action: str, summary: str, answer: Answer, **more: Any) -> Operation:
    return Operation(
        id=f"{action}Task",
        method="POST",
        path=f"/v1/tasks/{{id}}/{action}",
        summary=summary,
        tag="humans",
        scope="work",
        params=(_TASK_ID,),
        answers=(answer, *_HUMAN_ANSWERS),
        no_sdk=_NOT_PERSON_SDK,
        cli=action,
        **{"body": ActionBody, "body_required": False, **more},
    )


CLAIM_TASK = _human_action(
    "claim",
    "Claim a human queue's task (yours alone until the lease ends); claimed again, renew the lease",
    Answer(200, "the claim", Claimed),
)
RELEASE_TASK = _human_action(
    "release",
    "Give a claimed human task back to its queue (its claimant, or a lead of the queue)",
    Answer(200, "the release", Released),
)
COMPLETE_TASK = _human_action(
    "complete",
    "Complete a claimed human task with an answer its form accepts; the answer is its output",
    Answer(200, "the completion (again for a retry by the same person)", Succeeded),
    body=CompleteBody,
    body_required=True,
    examples={"approval": {"answer": {"approved": True, "comment": "no secrets, no unsafe calls"}}},
)
LIST_INBOX = Operation(
    id="listInbox",
    method="GET",
    path="/v1/inbox",
    summary="The human tasks the token's person may claim or holds, waiting or claimed, oldest first",
    tag="humans",
    scope="work",
    params=(Param("queue", "query", QueueName, "only this human queue's tasks (`security`)"),),
    answers=(Answer(200, "the tasks' records", list[TaskRecord]), Answer(*BAD), Answer(*FORBIDDEN), *_COMMON),
    no_sdk=_NOT_PERSON_SDK,
    cli="inbox",
)
GET_WORK = Operation(
    id="getWork",
    method="GET",
    path="/v1/inbox/{id}",
    summary="What a human task asks: its instructions, inputs and form, with what the guard found",
    tag="humans",
    scope="work",
    params=(_TASK_ID,),
    answers=(
        Answer(200, "the task as its person needs it", WorkView),
        Answer(*BAD),
        Answer(*FORBIDDEN),
        Answer(404, "no such human task (or another tenant's)"),
        *_COMMON,
    ),
    no_sdk=_NOT_PERSON_SDK,
)
_PERSON_ID = Param("id", "path", PersonId, "the person: the subject of their tokens", required=True)
LIST_PEOPLE = Operation(
    id="listPeople",
    method="GET",
    path="/v1/people",
    summary="The people who do human work: their skills, capacity, hours and availability",
    tag="humans",
    scope="read",
    answers=(Answer(200, "everyone, by id", list[Person]), Answer(*FORBIDDEN), *_COMMON),
    no_sdk="`maestro people ls` reads the same over NATS",
    cli="people ls",
)
PUT_PERSON = Operation(
    id="putPerson",
    method="PUT",
    path="/v1/people/{id}",
    summary="Add a person, or replace what is stored of them (an operator)",
    tag="humans",
    scope="admin",
    operator=True,
    body=Person,
    params=(_PERSON_ID,),
    answers=(
        Answer(200, "the person as stored", Person),
        Answer(*BAD),
        Answer(403, "not an operator's token (tenant *, scope admin)"),
        Answer(*TOO_LARGE),
        *_COMMON,
    ),
    no_sdk="`maestro people add` does the same over NATS",
    cli="people add",
    examples={"security": {"id": "alice@acme.example", "skills": ["security"], "capacity": 2}},
)
REMOVE_PERSON = Operation(
    id="removePerson",
    method="DELETE",
    path="/v1/people/{id}",
    summary="Forget a person (an operator); their claims stand until released or lapsed",
    tag="humans",
    scope="admin",
    operator=True,
    params=(_PERSON_ID,),
    answers=(
        Answer(200, "the person as they were", Person),
        Answer(*BAD),
        Answer(403, "not an operator's token (tenant *, scope admin)"),
        Answer(404, "no such person"),
        *_COMMON,
    ),
    no_sdk="`maestro people rm` does the same over NATS",
    cli="people rm",
)

SUBMIT_WORKFLOW = Operation(
    id="submitWorkflow",
    method="POST",
    path="/v1/workflows",
    summary="Run a workflow: a DAG of steps, each a task the guard judges",
    tag="workflows",
    scope="submit",
    body=Workflow,
    params=(_TRACEPARENT,),
    answers=(
        Answer(202, "accepted (the same answer when the same workflow comes again)", Submitted),
        Answer(*BAD),
        Answer(*FORBIDDEN),
        Answer(409, "the id is another workflow's"),
        Answer(*TOO_LARGE),
        *_COMMON,
    ),
    sdk="run_workflow",
    cli="workflow run",
)
LIST_WORKFLOWS = Operation(
    id="listWorkflows",
    method="GET",
    path="/v1/workflows",
    summary="List workflow records, newest first, passing every filter given",
    tag="workflows",
    scope="read",
    params=_listing("workflows", roles=False),
    answers=(
        Answer(200, "one page of records", Page[WorkflowRecord]),
        Answer(*BAD),
        Answer(*FORBIDDEN),
        *_COMMON,
    ),
    sdk="workflows",
    cli="ls --workflows",
)
GET_WORKFLOW = Operation(
    id="getWorkflow",
    method="GET",
    path="/v1/workflows/{id}",
    summary="A workflow's record: its state, steps and cost",
    tag="workflows",
    scope="read",
    params=(_WORKFLOW_ID,),
    answers=(
        Answer(200, "the record", WorkflowRecord),
        Answer(*BAD),
        Answer(*FORBIDDEN),
        Answer(404, "no such workflow (or another tenant's)"),
        *_COMMON,
    ),
    sdk="workflow",
    cli="workflow status",
)
CANCEL_WORKFLOW = _workflow_action("cancel", "Cancel a workflow: steps not ended are cancelled")
PAUSE_WORKFLOW = _workflow_action("pause", "Start no new step of a workflow until it is resumed")
RESUME_WORKFLOW = _workflow_action("resume", "Start a paused workflow's steps again")

_REMOTE = Answer(502, "the budget service failed")
GET_BUDGET = Operation(
    id="getBudget",
    method="GET",
    path="/v1/budgets/{tenant}",
    summary="A tenant's ledger: spent, held and left in its window, per role and model too",
    tag="admin",
    scope="read",
    params=(_TENANT_PATH,),
    answers=(
        Answer(200, "the ledger", LedgerView),
        Answer(*BAD),
        Answer(*FORBIDDEN),
        Answer(404, "no budget for that tenant (or another tenant's)"),
        _REMOTE,
        *_COMMON,
    ),
    sdk="ledger",
    cli="budget show",
)
SET_BUDGET = Operation(
    id="setBudget",
    method="PUT",
    path="/v1/budgets/{tenant}",
    summary="Change a tenant's budget, or a role's or model's sub-limit (an operator only)",
    tag="admin",
    scope="admin",
    operator=True,
    body=BudgetChange,
    params=(_TENANT_PATH,),
    answers=(
        Answer(200, "the ledger after the change", LedgerView),
        Answer(*BAD),
        Answer(403, "not an operator's token"),
        Answer(404, "another tenant's budget"),
        Answer(*TOO_LARGE),
        _REMOTE,
        *_COMMON,
    ),
    sdk="set_budget",
    cli="budget set",
    examples={"monthly": {"limit_micro_usd": 50_000_000, "window": "monthly"}},
)
GET_BUDGET_HISTORY = Operation(
    id="getBudgetHistory",
    method="GET",
    path="/v1/budgets/{tenant}/history",
    summary="A tenant's spend over time (spent, held, remaining) and the budget alerts that fired",
    tag="admin",
    scope="read",
    params=(
        _TENANT_PATH,
        Param(
            "since",
            "query",
            str,
            "where the range starts: an ISO 8601 time with its zone (`2026-12-03T07:00:00Z`) or how long ago "
            "(`30m`, `1h`, `7d`); at most 7 days back, never in the future (default: 24 hours ago)",
        ),
    ),
    answers=(
        Answer(200, "the samples and alerts from `since` until now", BudgetHistory),
        Answer(*BAD),
        Answer(*FORBIDDEN),
        Answer(404, "another tenant's budget"),
        *_COMMON,
    ),
    sdk="budget_history",
    cli="budget history",
    description="The budget replicas sample each tenant's ledger every MAESTRO_BUDGET_SAMPLE_S while it "
    "changes; the answer keeps the last sample of each of 240 steps of the range (`step_s`).",
)

_POLICY_ANSWER = Answer(200, "the bundle in force", PolicyInForce)
_NOT_OPERATOR = Answer(403, "not an operator's token")
_BAD_STORED = Answer(500, "the stored bundle does not validate (the guards keep the one they had)")
GET_POLICY = Operation(
    id="getPolicy",
    method="GET",
    path="/v1/policy",
    summary="The policy bundle the guards judge by: version, hash, who pushed it when, and its YAML",
    tag="admin",
    scope="admin",
    operator=True,
    answers=(_POLICY_ANSWER, Answer(*BAD), _NOT_OPERATOR, _BAD_STORED, *_COMMON),
    sdk="policy",
    cli="policy show",
)
PUSH_POLICY = Operation(
    id="pushPolicy",
    method="PUT",
    path="/v1/policy",
    summary="Validate a bundle (or one tenant's override) and store it; running guards switch to it",
    tag="admin",
    scope="admin",
    operator=True,
    body=str,
    body_media=YAML,
    params=(Param("tenant", "query", Tenant, "push this tenant's override only"),),
    answers=(
        _POLICY_ANSWER,
        Answer(400, "the bundle has problems; `problems` names each with its line"),
        _NOT_OPERATOR,
        Answer(409, "the stored bundle does not validate, so no override can be merged into it"),
        Answer(*TOO_LARGE),
        Answer(415, "not YAML (Content-Type application/yaml)"),
        *_COMMON,
    ),
    sdk="push_policy",
    cli="policy push",
)
RESET_POLICY = Operation(
    id="resetPolicy",
    method="DELETE",
    path="/v1/policy",
    summary="Go back to the shipped bundle (recorded like a push: who, when)",
    tag="admin",
    scope="admin",
    operator=True,
    answers=(_POLICY_ANSWER, Answer(*BAD), _NOT_OPERATOR, *_COMMON),
    sdk="reset_policy",
    cli="policy reset",
)
STEP_PATTERN = r"^([0-9]{1,7})([smhd]?)$"
"""A chart's step: seconds, or a number with its unit (`30s`, `5m`, `1h`, `1d`)."""
GET_POLICY_DECISIONS = Operation(
    id="getPolicyDecisions",
    method="GET",
    path="/v1/policy/decisions",
    summary="What the guards decided over time: requests by verdict and by rule that fired, per step",
    tag="policy",
    scope="read",
    params=(
        Param(
            "tenant",
            "query",
            Tenant,
            "only this tenant's decisions (a tenant's token sees its own only; an operator's, without it, "
            "every tenant's)",
        ),
        Param(
            "since",
            "query",
            str,
            "the window's start: an ISO 8601 time with its zone (`2026-12-03T07:00:00Z`) or a span ago "
            "(`30m`, `1h`, `7d`); default the last 24 hours, at most 7 days",
        ),
        Param(
            "step",
            "query",
            Annotated[str, Meta(pattern=STEP_PATTERN)],
            "each point's span: seconds, or with a unit (`30s`, `5m`, `1h`); default the window / 60, never "
            "less than the guards' tally interval (MAESTRO_TALLY_S)",
        ),
    ),
    answers=(
        Answer(200, "the decisions per step, oldest first, and over the window", DecisionHistory),
        Answer(*BAD),
        Answer(*FORBIDDEN),
        *_COMMON,
    ),
    no_sdk="a chart's data for the console; the guard's decisions themselves are each task's events",
    description="Each guard counts its decisions per tenant and publishes the counts every MAESTRO_TALLY_S "
    "on `maestro.v1.tally.<tenant>`; this sums them per step, over the guards and, unless `tenant` is given, "
    "over the tenants the token sees. A guard killed outright loses the counts of its last interval at "
    "most. `partial` says that more tallies were stored than one answer reads (the newest are left out).",
)

CREATE_TOKEN = Operation(
    id="createToken",
    method="POST",
    path="/v1/tokens",
    summary="Make an API token; its secret is in this answer only",
    tag="admin",
    scope="admin",
    body=TokenRequest,
    answers=(
        Answer(201, "the token (shown once) and its grant", IssuedToken),
        Answer(*BAD),
        Answer(403, "a tenant's admin makes tokens of its own tenant only"),
        Answer(*TOO_LARGE),
        *_COMMON,
    ),
    sdk="create_token",
    cli="token create",
    examples={"ci": {"tenant": "acme", "scopes": ["submit", "read"], "subject": "ci-bot"}},
)
LIST_TOKENS = Operation(
    id="listTokens",
    method="GET",
    path="/v1/tokens",
    summary="A tenant's tokens (never their secrets)",
    tag="admin",
    scope="admin",
    params=(Param("tenant", "query", GrantTenant, "whose tokens (`*`: every tenant's, an operator only)"),),
    answers=(
        Answer(200, "the tokens", list[TokenView]),
        Answer(*BAD),
        Answer(*FORBIDDEN),
        *_COMMON,
    ),
    sdk="tokens",
    cli="token list",
)
REVOKE_TOKEN = Operation(
    id="revokeToken",
    method="DELETE",
    path="/v1/tokens/{id}",
    summary="Revoke a token: it stops working at once",
    tag="admin",
    scope="admin",
    params=(Param("id", "path", TokenId, "the token's id", required=True),),
    answers=(
        Answer(200, "the token as it was", TokenView),
        Answer(*BAD),
        Answer(*FORBIDDEN),
        Answer(404, "no such token (or another tenant's)"),
        *_COMMON,
    ),
    sdk="revoke_token",
    cli="token revoke",
)

_GITHUB_HEADERS = (
    Param(
        "X-GitHub-Event",
        "header",
        Annotated[str, Meta(pattern=r"^[a-z_]{1,64}$")],
        "the event: `pull_request` starts reviews, `ping` answers",
        required=True,
    ),
    Param(
        "X-GitHub-Delivery",
        "header",
        Annotated[str, Meta(pattern=r"^[A-Za-z0-9-]{1,64}$")],
        "the delivery's id: a redelivery starts nothing new",
        required=True,
    ),
    Param(
        "X-Hub-Signature-256",
        "header",
        Annotated[str, Meta(pattern=r"^sha256=[0-9a-f]{64}$")],
        "`sha256=` and the HMAC-SHA256 of the raw body under the tenant's webhook secret",
        required=True,
    ),
)
GITHUB_HOOK = Operation(
    id="receiveGithubHook",
    method="POST",
    path="/v1/hooks/github",
    summary="GitHub's webhook: a pull request opened or pushed to starts a review of its head commit",
    tag="hooks",
    body=GithubWebhook,
    params=_GITHUB_HEADERS,
    answers=(
        Answer(
            200, "a ping, or a delivery seen before (`outcome` says which): nothing new starts", HookAnswer
        ),
        Answer(
            202, "a review starts (`accepted`), or the event needs none (`ignored`, with why)", HookAnswer
        ),
        Answer(400, "the request is malformed (no signature, not a webhook payload); `field` names the part"),
        Answer(401, "the signature is not the body's under the repository's tenant's secret: nothing starts"),
        Answer(404, "the repository is not connected (MAESTRO_GITHUB_CONFIG)"),
        Answer(*TOO_LARGE),
        UNAVAILABLE,
    ),
    no_sdk="GitHub calls it; `maestro review-pr` starts the same review from a local checkout",
    description=(
        "No bearer token: GitHub authenticates each delivery by its signature, `X-Hub-Signature-256`, "
        "the HMAC-SHA256 of the raw body under the webhook secret of the tenant the repository belongs "
        "to, compared in constant time. `pull_request` with action `opened`, `synchronize`, `reopened` "
        "or `ready_for_review` (a draft waits for `ready_for_review`) starts the review workflow of its "
        "head commit in the mesh and answers at once; a new head cancels the review of the one before. "
        "The results come back as commit statuses `maestro/check-pr`, `maestro/review` and "
        "`maestro/test` on the head commit, and check-pr's SARIF in code scanning."
    ),
)

DEPLOY_GATE = Operation(
    id="deployGate",
    method="GET",
    path="/v1/gates/deploy",
    summary="May this commit be deployed? Yes when a tester task for exactly it succeeded recently enough",
    tag="gates",
    scope="read",
    params=(
        Param(
            "repo", "query", Repo, "the repository, as the tester tasks' `repo` label names it", required=True
        ),
        Param(
            "commit",
            "query",
            Commit,
            "the full commit SHA, as the tester tasks' `commit` label",
            required=True,
        ),
        Param(
            "tenant",
            "query",
            Tenant,
            "the tenant whose tasks count (a tenant's token may leave it out; an operator's must give it)",
        ),
        Param("max_age_s", "query", MaxAge, "how long ago, at most, the proving task finished (86400)"),
    ),
    answers=(
        Answer(
            200, "the answer, allowed or not, with its one-line reason; recorded as a decision", GateAnswer
        ),
        Answer(*BAD),
        Answer(*FORBIDDEN),
        Answer(503, "the tasks bucket is too large to read, or NATS did not answer in time; try again"),
        UNAUTHORIZED,
    ),
    sdk="deploy_gate",
    cli="gate deploy",
    description=(
        "A commit is proved by a tester task of the tenant labelled `repo` and `commit` (the review "
        "workflow's test step is one; a pipeline may submit its own with `maestro submit --role tester "
        "--label repo=... --label commit=...`) that succeeded at most `max_age_s` ago, under a guard "
        "decision naming the policy bundle in force then. The answer is 200 either way: `allowed` says "
        "whether to deploy, `outcome` why not (`no_test`, `running`, `failed`, `stale`, `not_allowed`) and "
        "`reason` in one line; `task_id`, `policy_version` and `policy_hash` name the task and bundle it "
        "rests on. A failure that finished after the last success refuses the commit. Every answer is "
        "recorded on `maestro.v1.gate.<tenant>` with the token's subject (`maestro gate log` reads them "
        "back)."
    ),
)

GET_INDEX = Operation(
    id="getIndex",
    method="GET",
    path="/",
    summary="Which service answers, its version, and every path it serves",
    tag="service",
    answers=(Answer(200, "the index", Index),),
    no_sdk=_NOT_SDK,
)
GET_HEALTH = Operation(
    id="getHealth",
    method="GET",
    path="/healthz",
    summary="Liveness: the process answers",
    tag="service",
    answers=(Answer(200, "alive", Health),),
    no_sdk=_NOT_SDK,
)
GET_READINESS = Operation(
    id="getReadiness",
    method="GET",
    path="/readyz",
    summary="Readiness: connected to NATS with its streams provisioned",
    tag="service",
    answers=(Answer(200, "ready", Readiness), Answer(503, "not ready; `status` is `not ready`")),
    no_sdk=_NOT_SDK,
)
GET_METRICS = Operation(
    id="getMetrics",
    method="GET",
    path="/metrics",
    summary="Prometheus metrics, in the text exposition format",
    tag="service",
    answers=(Answer(200, "the metrics", str, "text/plain"),),
    no_sdk="Prometheus scrapes it",
)
GET_OPENAPI = Operation(
    id="getOpenApi",
    method="GET",
    path="/openapi.json",
    summary="This document",
    tag="service",
    answers=(Answer(200, "the OpenAPI 3.1 document", dict[str, Any]),),
    no_sdk="the document itself; `make schema` writes it to proto/schema/openapi.json",
)
GET_REFERENCE = Operation(
    id="getReference",
    method="GET",
    path="/docs",
    summary="The API reference, as a web page rendered from this document",
    tag="service",
    answers=(Answer(200, "the reference page", str, "text/html"),),
    no_sdk="a page for people",
)

GET_IDENTITY = Operation(
    id="getIdentity",
    method="GET",
    path="/v1/me",
    summary="Who the token is: its subject, tenant and scopes",
    tag="admin",
    any_token=True,
    answers=(Answer(200, "the token's identity", Identity), *_COMMON),
    no_sdk="the SDK and the CLI hold the token they use; `maestro token ls` lists them",
    description="What the console asks first, so that it shows only the actions the token may take.",
)
GET_CONSOLE = Operation(
    id="getConsole",
    method="GET",
    path="/ui/",
    summary="The operator console: approvals, tasks, workflows, budgets and policy, in a browser",
    tag="service",
    answers=(
        Answer(200, "the console's page (it asks for a token, and calls this API with it)", str, "text/html"),
    ),
    no_sdk="a page for people",
)
GET_CONSOLE_ASSET = Operation(
    id="getConsoleAsset",
    method="GET",
    path="/ui/{file}",
    summary="One of the console's files (its script, style and icon)",
    tag="service",
    params=(Param("file", "path", str, "the file's name (`app.js`, `console.css`)", required=True),),
    answers=(Answer(200, "the file", str, "text/plain"), Answer(404, "no such file")),
    no_sdk="a page for people",
)

OPERATIONS: tuple[Operation, ...] = (
    SUBMIT_TASK,
    LIST_TASKS,
    GET_TASK,
    GET_TASK_EVENTS,
    GET_TASK_ARTIFACT,
    FOLLOW_EVENTS,
    APPROVE_TASK,
    REJECT_TASK,
    CANCEL_TASK,
    RETRY_TASK,
    CLAIM_TASK,
    RELEASE_TASK,
    COMPLETE_TASK,
    LIST_INBOX,
    GET_WORK,
    LIST_PEOPLE,
    PUT_PERSON,
    REMOVE_PERSON,
    SUBMIT_WORKFLOW,
    LIST_WORKFLOWS,
    GET_WORKFLOW,
    CANCEL_WORKFLOW,
    PAUSE_WORKFLOW,
    RESUME_WORKFLOW,
    GET_BUDGET,
    SET_BUDGET,
    GET_BUDGET_HISTORY,
    GET_POLICY,
    PUSH_POLICY,
    RESET_POLICY,
    GET_POLICY_DECISIONS,
    CREATE_TOKEN,
    LIST_TOKENS,
    REVOKE_TOKEN,
    DEPLOY_GATE,
    GITHUB_HOOK,
    GET_INDEX,
    GET_HEALTH,
    GET_READINESS,
    GET_METRICS,
    GET_OPENAPI,
    GET_REFERENCE,
    GET_IDENTITY,
    GET_CONSOLE,
    GET_CONSOLE_ASSET,
)
"""Every operation of the orchestrator's HTTP API, in the order the document lists them."""
