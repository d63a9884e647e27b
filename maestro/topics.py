"""Every subject, stream, durable, bucket and header name, each bound to the message type it carries."""

from __future__ import annotations

import hashlib
import re
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, TypeVar

from proto.v1 import (
    ApprovalDecision,
    BudgetEvents,
    Commit,
    DeadLetter,
    DecisionTally,
    GetLedger,
    LedgerView,
    Release,
    Reservation,
    Reserve,
    Role,
    SetBudget,
    Settlement,
    TaskAssignment,
    TaskEvent,
    TaskRequest,
    TimerFired,
)
from proto.v1.gates import GateDecided
from proto.v1.humans import Notification
from proto.v1.reviews import PullRequestPushed
from proto.v1.scheduling import LeaderNews, WaitingTasks, WaitReasons
from proto.v1.workflows import Workflow, WorkflowControl, WorkflowEvents, WorkflowRecord

M = TypeVar("M")
M_contra = TypeVar("M_contra", contravariant=True)
Req = TypeVar("Req")
Resp = TypeVar("Resp")

_TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")
_NOT_TOKEN = re.compile(r"[^A-Za-z0-9_-]")


class SubjectError(ValueError):
    """A subject token was empty or held a dot, wildcard or space."""


def _check_token(value: str) -> str:
    if not _TOKEN.match(value):
        raise SubjectError(f"not a valid subject token: {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class Subject(Generic[M_contra]):
    """One concrete subject of a `Topic[M]`, typed by what may be published on it (`EVENTS.at(tenant, id)`).

    Contravariant: a subject that takes every TaskEvent takes a Started, so the events subject is also a
    schedule's target for a TimerFired.
    """

    name: str


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
        for value in values:
            if not _TOKEN.match(value):
                raise SubjectError(f"not a valid subject token: {value!r}")
        return f"{self.prefix}.{'.'.join(values)}"

    def at(self, *values: str) -> Subject[M]:
        """The concrete subject to publish this topic's messages on; raises SubjectError as subject() does."""
        subject: Subject[M] = Subject(self.subject(*values))
        return subject

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
    partitions: int = 0
    """How many partition subjects `<subject>.p<n>` route a key to one replica; 0: none."""
    service: str = "budget"
    """The NATS micro service that answers it (its queue group)."""

    def partition(self, key: str) -> int:
        """The partition a key (a tenant) belongs to; raises SubjectError when the endpoint has none."""
        if self.partitions <= 0:
            raise SubjectError(f"{self.subject} is not partitioned")
        return zlib.crc32(key.encode()) % self.partitions

    def partition_subject(self, key: str) -> str:
        """The partition subject a key is sent to: `maestro.v1.budget.reserve.p7`."""
        return self.subject_of_partition(self.partition(key))

    def subject_of_partition(self, partition: int) -> str:
        """The subject of one partition, for a replica that serves it."""
        return f"{self.subject}.p{partition}"

    @property
    def partition_pattern(self) -> str:
        """The partition subjects with their number named, for documentation."""
        return f"{self.subject}.p{{partition}}"


# -- streams ---------------------------------------------------------------------------------------
REQUESTS: Topic[TaskRequest] = Topic(
    "maestro.v1.req", ("tenant",), TaskRequest, "task requests as submitted, judged by the guard"
)
TASKS: Topic[TaskAssignment] = Topic(
    "maestro.v1.task",
    ("role", "tenant"),
    TaskAssignment,
    "tasks handed to the agents of a role (by the dispatcher, or by the guard when fair dispatch is off), "
    "each until its agent is done with it: what is stored for a role and tenant is what they run or will",
)
WAITING: Topic[TaskAssignment] = Topic(
    "maestro.v1.wait",
    ("role", "priority", "tenant"),
    TaskAssignment,
    "tasks the guard allowed, waiting for the dispatcher to hand them to their role's agents by priority, "
    "tenant weight and tenant limits (the policy bundle's scheduling); deleted once handed over",
)
REDISPATCH: Topic[TaskAssignment] = Topic(
    "maestro.v1.redispatch",
    ("role", "task_id"),
    TaskAssignment,
    "a retry's assignment, scheduled by the orchestrator in the tasks stream (a JetStream message schedule): "
    "it comes due on the role's tasks subject at the retry's time; scheduling it again replaces it",
)
EVENTS: Topic[TaskEvent] = Topic(
    "maestro.v1.evt",
    ("tenant", "task_id"),
    TaskEvent,  # type: ignore[arg-type]
    "every lifecycle event of every task: the audit log",
)
STOP_NOTICES: Topic[TaskEvent] = Topic(
    "maestro.v1.stop",
    ("tenant", "task_id"),
    TaskEvent,  # type: ignore[arg-type]
    "core NATS, not stored: the Cancelled or TimedOut the orchestrator just recorded for a running task, "
    "for the worker running it to stop; the events stream keeps the record of it",
)
LEADER_NEWS: Topic[LeaderNews] = Topic(
    "maestro.v1.leader.news",
    ("replica",),
    LeaderNews,
    "core NATS, not stored: what an orchestrator replica that does not lead just folded (tasks started, "
    "freed and ended; records written), for the leading replica's dispatcher and gauges of open tasks",
)
TIMERS: Topic[TimerFired] = Topic(
    "maestro.v1.timer",
    ("tenant", "task_id", "timer"),
    TimerFired,
    "durable timers the orchestrator arms (JetStream message schedules in the events stream): each comes "
    "due as the TimerFired event it holds, on the task's events subject; arming one again replaces it",
)
WORKFLOWS: Topic[Workflow] = Topic(
    "maestro.v1.wf", ("tenant",), Workflow, "workflows as submitted, started by the orchestrator"
)
WORKFLOW_EVENTS: Topic[WorkflowEvents] = Topic(
    "maestro.v1.wfevt",
    ("tenant", "workflow_id"),
    WorkflowEvents,  # type: ignore[arg-type]
    "what happened to a workflow as a whole (its steps' events are their tasks'): started, paused, resumed, "
    "ended",
)
DLQ: Topic[DeadLetter] = Topic(
    "maestro.v1.dlq",
    ("origin",),
    DeadLetter,
    "messages that could not be decoded or handled, with the reason",
)

APPROVALS: Topic[ApprovalDecision] = Topic(
    "maestro.v1.approval",
    ("tenant",),
    ApprovalDecision,
    "a human's approval or rejection of a task awaiting approval (or the approval timeout's)",
)

# Not under maestro.v1.budget: those subjects are the budget's request/reply endpoints.
BUDGET_EVENTS: Topic[BudgetEvents] = Topic(
    "maestro.v1.budgetevt",
    ("tenant",),
    BudgetEvents,  # type: ignore[arg-type]
    "what happened to a tenant's budget: holds expired, late commits, thresholds, overages, new windows, "
    "ledgers recreated after a removal",
)

GATE_DECISIONS: Topic[GateDecided] = Topic(
    "maestro.v1.gate",
    ("tenant",),
    GateDecided,
    "every decision of the deploy gate: who asked about which commit, what was decided and why, and the "
    "tester task (with its policy bundle's version and hash) that proved it",
)

NOTIFICATIONS: Topic[Notification] = Topic(
    "maestro.v1.notify",
    ("tenant",),
    Notification,
    "what the notifier tells people's tools (a signed webhook): a human task that breached an SLA; deleted "
    "once delivered",
)

DECISION_TALLIES: Topic[DecisionTally] = Topic(
    "maestro.v1.tally",
    ("tenant",),
    DecisionTally,
    "what the guard decided for a tenant, counted per guard and interval (MAESTRO_TALLY_S): verdicts and the "
    "rules that fired, for the console's charts over time (the events stream stays the audit log)",
)

STREAM_REQUESTS = "MAESTRO_REQ"
STREAM_TASKS = "MAESTRO_TASK"
STREAM_WAITING = "MAESTRO_WAIT"
STREAM_EVENTS = "MAESTRO_EVT"
STREAM_DLQ = "MAESTRO_DLQ"
STREAM_WORKFLOWS = "MAESTRO_WF"
STREAM_BUDGET_EVENTS = "MAESTRO_BUDGET_EVT"
STREAM_APPROVALS = "MAESTRO_APPROVAL"
STREAM_GATE = "MAESTRO_GATE"
STREAM_NOTIFY = "MAESTRO_NOTIFY"
STREAM_TALLIES = "MAESTRO_TALLY"

DURABLE_GUARD = "guard"
DURABLE_ORCHESTRATOR = "orchestrator"
DURABLE_ORCHESTRATOR_WORKFLOWS = "orchestrator-workflows"
DURABLE_GUARD_APPROVALS = "guard-approvals"
DURABLE_NOTIFIER = "orchestrator-notifier"
"""Delivers notifications (MAESTRO_NOTIFY) to the configured notifier, off the events' path."""


def agents_durable(role: Role) -> str:
    """The durable consumer shared by every replica of one role's agents."""
    return f"agents-{role}"


def backlog_durable(role: Role) -> str:
    """A durable consumer of the waiting stream that nobody pulls, one per role: its pending count is how many
    of the role's tasks wait for the dispatcher, the backlog an autoscaler reads (deploy/k8s, KEDA)."""
    return f"backlog-{role}"


# -- GitHub webhooks -------------------------------------------------------------------------------------
HOOKS: Topic[PullRequestPushed] = Topic(
    "maestro.v1.hook",
    ("tenant",),
    PullRequestPushed,
    "pull requests GitHub's webhook announced (signature verified), each a head commit for the orchestrator "
    "to review",
)
STREAM_HOOKS = "MAESTRO_HOOK"
DURABLE_ORCHESTRATOR_REVIEWS = "orchestrator-reviews"
"""Starts a review workflow for each pull request's head commit."""
DURABLE_ORCHESTRATOR_REVIEW_ENDS = "orchestrator-review-ends"
"""Follows workflow events (MAESTRO_EVT) to post a review's final commit statuses to GitHub."""
BUCKET_DELIVERIES = "maestro_deliveries"
"""Key = GitHub's X-GitHub-Delivery of a webhook the orchestrator took: a redelivery starts nothing new."""


def hook_msg_id(delivery: str) -> str:
    """The dedup id of a webhook delivery's message (the deliveries bucket remembers it for longer)."""
    return f"github.{delivery}"


# -- request/reply -----------------------------------------------------------------------------------
BUDGET_SERVICE = "budget"
# Each tenant's partition is served by one replica at a time, so replicas do not race on a ledger (they
# still may: compare-and-set keeps that correct). More partitions than replicas spread tenants evenly.
BUDGET_PARTITIONS = 16
BUDGET_RESERVE: Endpoint[Reserve, Reservation] = Endpoint(
    "maestro.v1.budget.reserve",
    "reserve",
    Reserve,
    Reservation,
    "hold an estimate for one task",
    BUDGET_PARTITIONS,
)
BUDGET_COMMIT: Endpoint[Commit, Settlement] = Endpoint(
    "maestro.v1.budget.commit",
    "commit",
    Commit,
    Settlement,
    "charge actual usage and release the hold",
    BUDGET_PARTITIONS,
)
BUDGET_RELEASE: Endpoint[Release, Settlement] = Endpoint(
    "maestro.v1.budget.release",
    "release",
    Release,
    Settlement,
    "release a hold without charging",
    BUDGET_PARTITIONS,
)
BUDGET_GET: Endpoint[GetLedger, LedgerView] = Endpoint(
    "maestro.v1.budget.get", "get", GetLedger, LedgerView, "read a tenant's ledger", BUDGET_PARTITIONS
)
BUDGET_SET: Endpoint[SetBudget, LedgerView] = Endpoint(
    "maestro.v1.budget.set",
    "set",
    SetBudget,
    LedgerView,
    "change a tenant's limits, window or sub-limits",
    BUDGET_PARTITIONS,
)

ORCHESTRATOR_SERVICE = "orchestrator"
WORKFLOW_CONTROL: Endpoint[WorkflowControl, WorkflowRecord] = Endpoint(
    "maestro.v1.workflow.control",
    "workflow-control",
    WorkflowControl,
    WorkflowRecord,
    "pause, resume or cancel a workflow; answers with its record (404: unknown; 400: ended, or not yours)",
    service=ORCHESTRATOR_SERVICE,
)

DISPATCHER_SERVICE = "dispatcher"
"""The NATS micro service of the dispatcher: served by the orchestrator replica that leads, alone."""
DISPATCH_WAITS: Endpoint[WaitingTasks, WaitReasons] = Endpoint(
    "maestro.v1.dispatch.waits",
    "dispatch-waits",
    WaitingTasks,
    WaitReasons,
    "why tasks still wait for their turn (their tenant's limits, or what goes before them), from the "
    "dispatcher of the orchestrator replica that leads",
    service=DISPATCHER_SERVICE,
)

# -- key-value buckets and object store ----------------------------------------------------------------
BUCKET_TASKS = "maestro_tasks"
BUCKET_BUDGET = "maestro_budget"
BUCKET_POLICY = "maestro_policy"
POLICY_BUNDLE_KEY = "bundle"
"""The one key of BUCKET_POLICY: the whole policy bundle (default and per-tenant overrides) as YAML."""
BUCKET_PARKED = "maestro_parked"
BUCKET_CLAIMS = "maestro_claims"
"""Key = task id: which tenant's request, with which content, owns the id (a TaskClaim)."""
BUCKET_WORK = "maestro_work"
"""Key = task id: a task's finished work (a FinishedWork) waiting to be paid for and reported."""
BUCKET_WORKERS = "maestro_workers"
"""Key = `<role>.<worker>` (worker_key): a running agent serving the role; value: when it last said so (JSON
time, UTC). Refreshed while the agent runs, deleted when it stops, expired by the bucket's TTL if it dies."""
BUCKET_WORKFLOWS = "maestro_workflows"
"""Key = workflow id: the workflow's record (its definition, its state and every step's)."""
BUCKET_ATTEMPTS = "maestro_attempts"
"""Key = task id: the assignment of a task's attempt that failed with attempts left, kept by its worker for
the orchestrator to hand out again (a retry)."""
BUCKET_TOKENS = "maestro_tokens"
"""Key = token id: an API token's grant (its tenant, scopes and holder) and the SHA-256 of its secret, never
the secret itself. Deleting the key revokes the token."""
BUCKET_HUMAN_TASKS = "maestro_human_tasks"
"""Key = task id: a human queue's task as the guard admitted it (a TaskAssignment: the instructions, the
inputs and the form), for the people who claim it to read."""
BUCKET_PEOPLE = "maestro_people"
"""Key = person_key(id): a person who does human work (a Person: skills, capacity, hours, availability)."""
BUCKET_LEASES = "maestro_leases"
"""Key = what is led (LEADER_KEY): who leads it now (a replica's id), renewed while it leads; a replica takes
it over once it has seen no renewal for the lease's length (services/orchestrator/lease.py)."""
LEADER_KEY = "orchestrator"
"""The BUCKET_LEASES key of the orchestrator replica that runs the dispatcher and the gauges of open tasks."""
STORE_ARTIFACTS = "maestro_artifacts"


def person_key(person_id: str) -> str:
    """The BUCKET_PEOPLE key of a person: their id may hold characters a key may not (`@`)."""
    return hashlib.sha256(person_id.encode()).hexdigest()[:32]


# -- headers ---------------------------------------------------------------------------------------------
HEADER_MSG_ID = "Nats-Msg-Id"
HEADER_SUBJECT = "Nats-Subject"
"""On a message read back by direct get: the subject it was stored on."""
HEADER_TRACEPARENT = "traceparent"
HEADER_ERROR = "Nats-Service-Error"
HEADER_ERROR_CODE = "Nats-Service-Error-Code"
HEADER_DLQ_REASON = "Maestro-Dlq-Reason"
HEADER_PUSHED_BY = "Maestro-Pushed-By"
"""On a policy bundle entry (or the deletion that resets to the shipped one): who stored it."""
HEADER_DEFERRED_HOLD = "Maestro-Deferred-Hold"
"""On a waiting task whose hold the dispatcher makes when it hands the task over (TaskAssignment.deferred),
so that it need not decode the others."""
HEADER_CLAIMED = "Maestro-Claimed"
"""On a task request whose sender claimed its id before publishing it (maestro/client.publish_request): the
guard reads the claim instead of trying to make it, and checks it all the same (maestro/claims.py)."""
HEADER_EXPECTED_LAST_SUBJECT_SEQ = "Nats-Expected-Last-Subject-Sequence"
HEADER_SCHEDULE = "Nats-Schedule"
"""On a message to a stream that allows schedules: when to store it on its target (`@at <RFC 3339 UTC>`)."""
HEADER_SCHEDULE_TARGET = "Nats-Schedule-Target"
"""On a scheduled message: the subject (in the same stream) it is stored on when it comes due."""
HEADER_STATUS = "Status"
"""On a status message from the server (as nats-py parses its status line): the code, e.g. `408`."""
HEADER_STATUS_DESCRIPTION = "Description"
"""On a status message: the words after the code, e.g. `Consumer Deleted`."""
HEADER_PENDING_MESSAGES = "Nats-Pending-Messages"
"""On the status that ends a pull request: how many of its batch the server did not send."""


def direct_get_subject(stream: str) -> str:
    """Where a request for one stored message by sequence goes (JetStream's direct get, any replica)."""
    return f"$JS.API.DIRECT.GET.{_check_token(stream)}"


def stream_info_subject(stream: str) -> str:
    """Where a request for a stream's configuration and state goes (JetStream's API)."""
    return f"$JS.API.STREAM.INFO.{_check_token(stream)}"


def message_delete_subject(stream: str) -> str:
    """Where a request to delete one stored message by sequence goes (JetStream's API)."""
    return f"$JS.API.STREAM.MSG.DELETE.{_check_token(stream)}"


def stream_purge_subject(stream: str) -> str:
    """Where a request to purge a stream (or one subject of it, below a sequence) goes (JetStream's API)."""
    return f"$JS.API.STREAM.PURGE.{_check_token(stream)}"


def consumer_next_subject(stream: str, durable: str) -> str:
    """Where a pull request for a durable consumer's next messages goes (JetStream's API)."""
    return f"$JS.API.CONSUMER.MSG.NEXT.{_check_token(stream)}.{_check_token(durable)}"


def service_ping_subject(service: str) -> str:
    """Where every instance of a nats micro service answers a ping with its id."""
    return f"$SRV.PING.{_check_token(service)}"


def service_stats_subject(service: str | None = None) -> str:
    """Where the instances of a nats micro service (every service's, without a name) answer with their
    statistics: id, version, start and each endpoint's requests, errors and processing time."""
    return "$SRV.STATS" if service is None else f"$SRV.STATS.{_check_token(service)}"


def kv_stream(bucket: str) -> str:
    """The stream that backs a KV bucket (JetStream's naming, as nats-py's create_key_value uses it)."""
    return f"KV_{bucket}"


def kv_subject(bucket: str, key: str) -> str:
    """The subject a KV bucket stores `key` under (what KeyValue.put publishes to)."""
    return f"$KV.{bucket}.{_check_token(key)}"


def token_of(name: str) -> str:
    """A name as a subject token: each character a token may not hold (`host.example.com-12`) replaced by
    `_`."""
    return _NOT_TOKEN.sub("_", name) or "_"


def worker_key(role: str, worker: str) -> str:
    """The key of one worker's announcement that it serves `role`; a worker name that is no key token has
    each other character replaced by `_` (token_of)."""
    return f"{_check_token(role)}.{token_of(worker)}"


def role_of_worker_key(key: str) -> str:
    """The role a worker_key() announces."""
    return key.split(".", 1)[0]


def request_msg_id(task_id: str, fingerprint: str) -> str:
    """The dedup id of a request the SDK or the API publishes: its id and its content's fingerprint."""
    return f"{task_id}.{fingerprint}"


def event_msg_id(task_id: str, slot: str) -> str:
    """The dedup id of an event stored once per task and slot (`accepted`, `verdict`, `outcome`)."""
    return f"{task_id}.{slot}"


def end_msg_id(task_id: str) -> str:
    """The dedup id of the orchestrator's decision that ends a task (cancelled, timed out): one per task."""
    return event_msg_id(task_id, "end")


def dispatch_msg_id(waiting_seq: int) -> str:
    """The dedup id of the hand-over of the task stored at `waiting_seq` in the waiting stream: a dispatcher
    that restarts before deleting it hands it over again, and that copy is dropped."""
    return f"dispatch.{waiting_seq}"


def replay_msg_id(letter_seq: int) -> str:
    """The dedup id of a dead letter's replay: fresh for the original's stream, once per letter."""
    return f"dlq-replay.{letter_seq}"


def tally_msg_id(guard: str, tenant: str, at: datetime) -> str:
    """The dedup id of one guard's tally of one tenant for the interval starting `at`: a publish retried
    (the stream did not answer) is stored once."""
    return f"tally.{guard}.{tenant}.{at.astimezone(UTC).isoformat()}"


def sample_msg_id(tenant: str, window_id: str, interval: int) -> str:
    """The dedup id of a tenant's spend sample of one window in one sampling interval (its number since the
    epoch): replicas that sample the tenant in the same interval, or a publish retried, store one."""
    return f"{tenant}.{window_id}.sampled.{interval}"


def approval_msg_id(task_id: str, tenant: str) -> str:
    """The dedup id of the decision on a task: one per task and tenant, so only the first one counts.

    The tenant is part of it so that a decision sent under another tenant (refused by the guard) cannot
    take the slot of the task owner's own decision.
    """
    return f"{task_id}.{tenant}.decision"


# -- access: the NATS server's own subjects, which permissions name (maestro/access/nats_permissions.py) -----
# Below are JetStream's API, its acks and flow control, the KV and object store subjects, nats micro's
# discovery and the reply inboxes: wire names of the server and of nats-py, not Maestro's, named here so
# that the permission table builds every subject from this module.
JS_API = "$JS.API"
"""The prefix of every JetStream API request (`$JS.API.STREAM.CREATE.<stream>`, ...)."""


def js_api(*tokens: str) -> str:
    """A JetStream API subject, or a filter of them (`*`, a last `>`): `js_api("STREAM", "INFO", "*")`."""
    return ".".join((JS_API, *tokens))


def js_ack_filter(stream: str = "*") -> str:
    """Every ack subject of every consumer of a stream, or of any stream (where a consumer's client acks,
    naks and terms what it was given)."""
    return f"$JS.ACK.{stream if stream == '*' else _check_token(stream)}.>"


JS_FLOW_CONTROL = "$JS.FC.>"
"""Where a push consumer's client answers the server's flow control (KV watchers, ordered consumers)."""


def kv_filter(bucket: str) -> str:
    """Every key of a KV bucket: where its entries are written (put, create, update, delete, purge)."""
    return f"$KV.{_check_token(bucket)}.>"


def object_store_stream(bucket: str) -> str:
    """The stream that backs an object store (JetStream's naming, as nats-py's object store uses it)."""
    return f"OBJ_{_check_token(bucket)}"


def object_store_filter(bucket: str) -> str:
    """Every chunk and every description of an object store: where its objects are written."""
    return f"$O.{_check_token(bucket)}.>"


SERVICE_DISCOVERY = "$SRV.>"
"""Where nats micro services answer pings, info and stats requests (and `maestro` discovers them)."""

INBOX_PREFIX = "_INBOX"
"""nats-py's default reply inbox prefix: what a client connected without Maestro's credentials uses."""


def inbox_prefix(user: str) -> str:
    """The reply inbox prefix of one NATS user (its public key): only that user may subscribe below it, so
    nobody reads another's replies."""
    return f"{INBOX_PREFIX}_{_check_token(user)}"
