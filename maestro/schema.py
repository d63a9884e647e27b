"""Write proto/schema/: one JSON Schema per wire message, an AsyncAPI 3.0.0 document of every subject, and the
OpenAPI 3.1.0 document of the orchestrator's HTTP API (maestro/openapi.py).

`python -m maestro.schema` regenerates the files; `--check` exits 1 listing the ones that are stale.
Everything is derived from maestro/topics.py and the proto Structs; only who sends and who receives
each subject (docs/ARCHITECTURE.md) is written down here, and a topic without it stops the generator.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import msgspec

import proto
import proto.v1
from maestro import openapi, topics, topology
from maestro.runtime import DEFAULT_URL
from maestro.settings import Settings
from proto.v1 import (
    PRIORITIES,
    Accepted,
    AwaitingApproval,
    Cancelled,
    Commit,
    ContextFile,
    Decision,
    Failed,
    FileChanges,
    FinishedWork,
    GetLedger,
    Heartbeat,
    LedgerView,
    ModelReview,
    Plan,
    Queued,
    Rejected,
    Reservation,
    Reserve,
    Review,
    Started,
    Succeeded,
    TaskAssignment,
    TaskClaim,
    TaskRecord,
    TaskRequest,
    TesterReport,
    TimedOut,
    TimerFired,
    TokenGrant,
    Usage,
    Violation,
    WorkerPresence,
)
from proto.v1.ids import ROLES

SCHEMA_DIR = Path(proto.__file__).parent / "schema"
ASYNCAPI_FILE = "asyncapi.json"
OPENAPI_FILE = "openapi.json"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

Action = Literal["send", "receive"]


class SchemaError(RuntimeError):
    """topics.py and the flows written here disagree: a subject nobody sends or receives, or a stray flow."""


@dataclass(frozen=True)
class Flow:
    """One party's part on a subject: it sends (or receives) these messages; () means every one."""

    party: str
    action: Action
    summary: str
    messages: tuple[Any, ...] = ()
    durable: str = ""


# Who does what (docs/ARCHITECTURE.md, One task, end to end), keyed by a Topic's or Endpoint's name.
FLOWS: dict[str, tuple[Flow, ...]] = {
    "REQUESTS": (
        Flow(
            "client",
            "send",
            "Submit a task (SDK, CLI, the orchestrator's HTTP API); Nats-Msg-Id = request id",
        ),
        Flow(
            "guard",
            "receive",
            "Judge each request against the tenant's policy and reserve its estimated cost",
            durable=topics.DURABLE_GUARD,
        ),
    ),
    "WAITING": (
        Flow(
            "guard",
            "send",
            "Queue an allowed (possibly redacted) request at its role and priority, with its reservation",
        ),
        Flow(
            "orchestrator",
            "receive",
            "The dispatcher reads the headers of every waiting task (an ordered consumer), takes the one it "
            "picks by sequence (direct get), hands it over and deletes it",
        ),
    ),
    "TASKS": (
        Flow(
            "orchestrator",
            "send",
            "The dispatcher hands a waiting task to its role's agents in its turn (Nats-Msg-Id = "
            "dispatch.<waiting seq>); with MAESTRO_FAIR_DISPATCH=off the guard hands tasks over itself",
        ),
        Flow(
            "agents",
            "receive",
            "Every replica of a role pulls from that role's shared durable consumer",
            durable=topics.agents_durable("{role}"),
        ),
    ),
    "REDISPATCH": (
        Flow(
            "orchestrator",
            "send",
            "Schedule a retry's assignment (Nats-Schedule `@at`, Nats-Schedule-Target = the role's tasks "
            "subject), read from the attempts bucket where the failed attempt's worker kept it",
            (TaskAssignment,),
        ),
        Flow("agents", "receive", "The server stores it on the role's tasks subject when it comes due"),
    ),
    "EVENTS": (
        Flow(
            "guard",
            "send",
            "The guard's verdict on a request",
            (Accepted, Rejected, AwaitingApproval, Queued),
        ),
        Flow("agents", "send", "A worker's progress and outcome", (Started, Heartbeat, Succeeded, Failed)),
        Flow("orchestrator", "send", "Cancellations and timeouts", (Cancelled, TimedOut)),
        Flow(
            "orchestrator",
            "receive",
            "Fold every event into the task's record and advance chains, retries and timeouts",
            durable=topics.DURABLE_ORCHESTRATOR,
        ),
        Flow(
            "client",
            "receive",
            "Read or follow one task's events (`maestro watch`, GET /v1/tasks/{id}/events)",
        ),
    ),
    "STOP_NOTICES": (
        Flow(
            "orchestrator",
            "send",
            "Tell the worker running a task that it was cancelled or timed out (core NATS), once the "
            "Cancelled or TimedOut is recorded",
            (Cancelled, TimedOut),
        ),
        Flow(
            "agents",
            "receive",
            "One subscription per worker process; the worker running the task kills its work",
        ),
    ),
    "LEADER_NEWS": (
        Flow(
            "orchestrator",
            "send",
            "A replica that does not lead tells the leader (core NATS, a few milliseconds at a time) which "
            "tasks started, were handed off or ended, and which records it wrote",
        ),
        Flow(
            "orchestrator",
            "receive",
            "The leading replica's dispatcher frees slots by them; its gauges of open tasks count them",
        ),
    ),
    "TIMERS": (
        Flow(
            "orchestrator",
            "send",
            "Arm a durable timer (approval deadline, schedule-to-start, start-to-close) as a message "
            "schedule: Nats-Schedule `@at <RFC 3339>`, Nats-Schedule-Target = the task's events subject",
            (TimerFired,),
        ),
        Flow(
            "orchestrator",
            "receive",
            "The server stores the timer's TimerFired on the task's events subject when it comes due",
        ),
    ),
    "WORKFLOWS": (
        Flow(
            "client",
            "send",
            "Submit a workflow (SDK, `maestro workflow run`, POST /v1/workflows); Nats-Msg-Id: id.digest",
        ),
        Flow(
            "orchestrator",
            "receive",
            "Start each workflow: record it and submit its first steps as task requests",
            durable=topics.DURABLE_ORCHESTRATOR_WORKFLOWS,
        ),
    ),
    "WORKFLOW_CONTROL": (
        Flow(
            "client",
            "send",
            "Pause, resume or cancel a workflow (the SDK, `maestro workflow pause|resume|cancel`)",
        ),
        Flow("orchestrator", "receive", "Fold the change into the workflow's record and answer with it"),
    ),
    "DISPATCH_WAITS": (
        Flow("client", "send", "Ask why tasks still wait for their turn (`maestro ls`, the SDK)"),
        Flow(
            "orchestrator",
            "receive",
            "The leading replica's dispatcher answers from its queue: limits, or what goes first",
        ),
    ),
    "WORKFLOW_EVENTS": (
        Flow("orchestrator", "send", "A workflow started, paused, resumed or ended"),
        Flow("client", "receive", "Follow a workflow (`maestro workflow watch`)"),
        Flow(
            "orchestrator",
            "receive",
            "Post a pull request review's final commit statuses to GitHub when its workflow ends",
            durable=topics.DURABLE_ORCHESTRATOR_REVIEW_ENDS,
        ),
    ),
    "HOOKS": (
        Flow(
            "orchestrator",
            "send",
            "POST /v1/hooks/github: a pull request whose webhook GitHub signed, with a head commit to "
            "review; Nats-Msg-Id = `github.<X-GitHub-Delivery>`",
        ),
        Flow(
            "orchestrator",
            "receive",
            "Judge the diff with check-pr, post statuses, cancel the older head's review, start this one's",
            durable=topics.DURABLE_ORCHESTRATOR_REVIEWS,
        ),
    ),
    "DLQ": (
        Flow("guard", "send", "Requests that did not decode or could not be handled"),
        Flow("agents", "send", "Tasks that did not decode or exhausted their deliveries"),
        Flow("orchestrator", "send", "Events that did not decode or could not be applied"),
        Flow("operator", "receive", "Inspect dead letters and replay or discard them"),
    ),
    "APPROVALS": (
        Flow(
            "client",
            "send",
            "Approve or reject a task awaiting approval (`maestro approve|reject`, the SDK); "
            "Nats-Msg-Id = `<task_id>.<tenant>.decision`, so only the first decision counts",
        ),
        Flow("orchestrator", "send", "POST /v1/tasks/{id}/approve and /v1/tasks/{id}/reject"),
        Flow("guard", "send", "Reject a task nobody decided on within its approval timeout"),
        Flow(
            "guard",
            "receive",
            "Queue an approved task (reserving its budget) or reject it; tenants must match",
            durable=topics.DURABLE_GUARD_APPROVALS,
        ),
    ),
    "NOTIFICATIONS": (
        Flow(
            "orchestrator",
            "send",
            "A human task breached an SLA; Nats-Msg-Id = `<task_id>.escalated-<sla>`, so it is told once",
        ),
        Flow(
            "orchestrator",
            "receive",
            "POST it, signed, to MAESTRO_NOTIFY_WEBHOOK_URL, retried with back-off until delivered",
            durable=topics.DURABLE_NOTIFIER,
        ),
    ),
    "BUDGET_RESERVE": (
        Flow("guard", "send", "Hold a task's estimated cost before queueing it"),
        Flow("budget", "receive", "Hold the estimate if the tenant's limit allows it; idempotent per task"),
    ),
    "BUDGET_COMMIT": (
        Flow("agents", "send", "Charge what the task actually used"),
        Flow("budget", "receive", "Charge the usage and release the rest of the hold; idempotent"),
    ),
    "BUDGET_RELEASE": (
        Flow("agents", "send", "Give back the hold of a task that went to the DLQ without running"),
        Flow("orchestrator", "send", "Give back the hold of a cancelled or timed-out task"),
        Flow("budget", "receive", "Release the hold without charging; idempotent"),
    ),
    "BUDGET_GET": (
        Flow("client", "send", "Read a tenant's ledger"),
        Flow("budget", "receive", "Answer with the tenant's limit, spend and holds"),
    ),
    "BUDGET_SET": (
        Flow(
            "client",
            "send",
            "Change a tenant's limits, window or a role's or model's sub-limit (`maestro budget set`)",
        ),
        Flow(
            "budget",
            "receive",
            "Apply the change to the tenant's ledger by compare-and-set; effective at once",
        ),
    ),
    "BUDGET_EVENTS": (
        Flow(
            "budget",
            "send",
            "Holds expired, late commits charged, thresholds of 50/80/100% crossed, overages, new windows, "
            "ledgers recreated after someone removed them from the bucket",
        ),
        Flow("operator", "receive", "Alert on thresholds and overages; audit expired holds"),
    ),
    "GATE_DECISIONS": (
        Flow(
            "client",
            "send",
            "Record a deploy gate decision (`maestro gate deploy`, the SDK): who asked, the answer, the "
            "proving task and its policy bundle; Nats-Msg-Id = the decision's id",
        ),
        Flow("orchestrator", "send", "Record an answer of GET /v1/gates/deploy, asked by a token's subject"),
        Flow("operator", "receive", "Audit why a deploy went through (`maestro gate log`, the SDK)"),
    ),
    "DECISION_TALLIES": (
        Flow(
            "guard",
            "send",
            "Every MAESTRO_TALLY_S (and when it stops), per tenant with decisions: how many by verdict and "
            "by rule that fired; Nats-Msg-Id = `tally.<guard>.<tenant>.<interval start>`, stored once",
        ),
        Flow(
            "orchestrator",
            "receive",
            "GET /v1/policy/decisions: the tallies since a time, summed per step over guards and tenants",
        ),
    ),
}

# Messages that are stored rather than sent on a topic of their own, but still cross process boundaries.
STORED: tuple[tuple[str, Any, str], ...] = (
    (topics.BUCKET_TASKS, TaskRecord, "task_id"),
    (topics.BUCKET_CLAIMS, TaskClaim, "task_id"),
    (topics.BUCKET_WORK, FinishedWork, "task_id"),
    (topics.BUCKET_WORKERS, WorkerPresence, "worker_key"),
    (topics.BUCKET_TOKENS, TokenGrant, "token_id"),
)

# Documents that travel on no subject but are contracts all the same: what a model must answer a role (the
# agents send it the schema), and the reports users parse from a task's output and artifacts.
DOCUMENTS: tuple[Any, ...] = (Plan, FileChanges, ModelReview, Review, TesterReport)

_AT = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
_TASK = "t0194a1b2c3d4e5f6a7b8c9d0e1"
_ALLOW = Decision(verdict="allow", policy_version="default@1", estimate_micro_usd=18_432)
_REQUEST = TaskRequest(
    id=_TASK,
    tenant="acme",
    role="planner",
    prompt="Plan a CLI that counts words",
    context=[ContextFile(path="README.md", content="# wc\n")],
    labels={"repo": "acme/wc"},
)

# Example payloads shown in the AsyncAPI document; a test decodes each one with its type.
EXAMPLES: dict[Any, tuple[Any, ...]] = {
    TaskRequest: (_REQUEST,),
    TaskAssignment: (TaskAssignment(request=_REQUEST, decision=_ALLOW, reservation_id=f"r-{_TASK}"),),
    Accepted: (Accepted(task_id=_TASK, tenant="acme", at=_AT, role="planner", prompt_chars=28),),
    Rejected: (
        Rejected(
            task_id=_TASK,
            tenant="acme",
            at=_AT,
            decision=Decision(
                verdict="deny",
                violations=[
                    Violation(
                        policy="secrets",
                        rule_id="secrets.aws-access-key",
                        location="prompt:1:18",
                        evidence="AKIA************",
                        message="an AWS access key",
                    )
                ],
            ),
            reason="secrets.aws-access-key",
        ),
    ),
    Succeeded: (
        Succeeded(
            task_id=_TASK,
            tenant="acme",
            at=_AT,
            worker="agents-1",
            output="1. Parse arguments\n2. Count words\n3. Print the total",
            usage=Usage(model="offline", input_tokens=12, output_tokens=24),
            cost_micro_usd=396,
        ),
    ),
    Reserve: (Reserve(tenant="acme", task_id=_TASK, estimate_micro_usd=18_432, estimate_tokens=1_036),),
    Reservation: (
        Reservation(
            tenant="acme",
            task_id=_TASK,
            granted=True,
            reservation_id=f"r-{_TASK}",
            held_micro_usd=18_432,
            remaining_micro_usd=99_981_568,
        ),
    ),
    Commit: (
        Commit(
            tenant="acme",
            reservation_id=f"r-{_TASK}",
            usage=Usage(model="offline", input_tokens=12, output_tokens=24),
        ),
    ),
    GetLedger: (GetLedger(tenant="acme"),),
    LedgerView: (
        LedgerView(
            tenant="acme",
            limit_micro_usd=100_000_000,
            spent_micro_usd=396,
            held_micro_usd=0,
            remaining_micro_usd=99_999_604,
        ),
    ),
}

_PARAMETERS: dict[str, dict[str, Any]] = {
    "tenant": {"description": "the tenant: lowercase letters, digits, '-' and '_'", "examples": ["acme"]},
    "role": {"description": "the agent role", "enum": list(ROLES), "examples": ["planner"]},
    "task_id": {"description": "the task id (the request's idempotency key)", "examples": [_TASK]},
    "origin": {"description": "the consumer that gave up on the message", "examples": ["guard"]},
    "worker_key": {
        "description": "a role, a dot, and the worker's name (any character but A-Z, a-z, 0-9, - and _ as _)",
        "examples": ["planner.agents-1"],
    },
    "priority": {
        "description": "the task's priority, 0 (lowest) to 9 (highest)",
        "enum": [str(p) for p in PRIORITIES],
        "examples": ["5"],
    },
    "workflow_id": {"description": "the workflow id (its idempotency key)", "examples": ["wf-release-42"]},
    "token_id": {"description": "an API token's public id: 16 hex digits", "examples": ["0123456789abcdef"]},
    "timer": {
        "description": "which time-out the timer is for",
        "enum": ["approval", "schedule_to_start", "start_to_close"],
        "examples": ["start_to_close"],
    },
    "replica": {
        "description": "the sending orchestrator replica's name (MAESTRO_WORKER; other characters than A-Z, "
        "a-z, 0-9, - and _ as _)",
        "examples": ["maestro-orchestrator-7d9f-x2k4q"],
    },
    "partition": {
        "description": "the tenant's partition: zlib.crc32(tenant as UTF-8) mod the endpoint's partitions",
        "examples": ["7"],
    },
}

_STREAM_HEADERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        topics.HEADER_MSG_ID: {
            "type": "string",
            "description": "JetStream de-duplication id: the request id, or `<task_id>.<slot>` for events",
        },
        topics.HEADER_TRACEPARENT: {"type": "string", "description": "W3C trace context"},
    },
}

_ERROR_MESSAGE = "ServiceError"


# -- names ------------------------------------------------------------------------------------------
def type_name(type_: Any) -> str:
    """The name a message type (or union) is exported under in proto.v1."""
    for name, value in vars(proto.v1).items():
        if value is type_ and not name.startswith("_"):
            return name
    raise SchemaError(f"{type_!r} is not exported from proto.v1")


def _camel(name: str) -> str:
    head, *rest = name.lower().split("_")
    return head + "".join(part.capitalize() for part in rest)


def _members(type_: Any) -> tuple[Any, ...]:
    """The Structs a message type stands for: itself, or each member of a union."""
    args = getattr(type_, "__args__", None)
    return tuple(args) if args else (type_,)


def declared_topics() -> dict[str, topics.Topic[Any]]:
    """Every Topic in maestro/topics.py by its name there, in the order they are declared."""
    return {k: v for k, v in vars(topics).items() if isinstance(v, topics.Topic)}


def declared_endpoints() -> dict[str, topics.Endpoint[Any, Any]]:
    """Every Endpoint in maestro/topics.py by its name there, in the order they are declared."""
    return {k: v for k, v in vars(topics).items() if isinstance(v, topics.Endpoint)}


def wire_types() -> list[Any]:
    """Every message type that travels on a subject or endpoint, or is stored for other services to read."""
    found: list[Any] = []
    for topic in declared_topics().values():
        found.append(topic.type)
    for endpoint in declared_endpoints().values():
        found.extend((endpoint.request, endpoint.response))
    found.extend(type_ for _, type_, _ in STORED)
    unique: list[Any] = []
    for type_ in found:
        if type_ not in unique:
            unique.append(type_)
    return unique


# -- JSON Schema ------------------------------------------------------------------------------------
def json_schema(type_: Any) -> dict[str, Any]:
    """The standalone JSON Schema of one wire message (a union's members are in $defs)."""
    schema: dict[str, Any] = {"$schema": JSON_SCHEMA_DIALECT, "title": type_name(type_)}
    schema.update(msgspec.json.schema(type_))
    if len(_members(type_)) > 1:
        schema["description"] = f"one of {len(_members(type_))} kinds, told apart by the tag field"
    return schema


# -- AsyncAPI ---------------------------------------------------------------------------------------
def _streams() -> dict[str, Any]:
    return {stream.subjects[0]: stream for stream in topology.topology(Settings()).streams if stream.subjects}


def _message_component(type_: Any, headers: dict[str, Any] | None) -> dict[str, Any]:
    name = type_name(type_)
    doc = (type_.__doc__ or "").strip()
    message: dict[str, Any] = {
        "name": name,
        "title": name,
        "summary": doc.splitlines()[0] if doc else name,
        "contentType": "application/json",
        "payload": {"$ref": f"#/components/schemas/{name}"},
    }
    tag = getattr(getattr(type_, "__struct_config__", None), "tag", None)
    if isinstance(tag, str):
        message["summary"] = f"{tag}: {message['summary']}"
    if headers is not None:
        message["headers"] = headers
    examples = EXAMPLES.get(type_, ())
    if examples:
        message["examples"] = [
            {"name": f"{name}-{i}", "payload": msgspec.to_builtins(example)}
            for i, example in enumerate(examples, 1)
        ]
    return message


def _error_component() -> dict[str, Any]:
    return {
        "name": _ERROR_MESSAGE,
        "title": "Service error",
        "summary": "A request/reply call failed: empty body, the reason in headers",
        "description": "400 the request was invalid or rejected; 500 the handler failed; "
        "503 retry later (also what a caller sees when nobody answers in time).",
        "contentType": "application/json",
        "headers": {
            "type": "object",
            "required": [topics.HEADER_ERROR, topics.HEADER_ERROR_CODE],
            "properties": {
                topics.HEADER_ERROR: {"type": "string", "description": "what went wrong"},
                topics.HEADER_ERROR_CODE: {"type": "string", "enum": ["400", "500", "503"]},
            },
        },
        "payload": {"type": "string", "maxLength": 0},
    }


def _operation(
    channel_id: str, channel_messages: Sequence[str], flow: Flow, reply: dict[str, Any] | None
) -> dict[str, Any]:
    wanted = [type_name(t) for t in flow.messages] or list(channel_messages)
    stray = sorted(set(wanted) - set(channel_messages))
    if stray:
        raise SchemaError(f"{flow.party} {flow.action}s {stray} which are not on {channel_id}")
    operation: dict[str, Any] = {
        "action": flow.action,
        "channel": {"$ref": f"#/channels/{channel_id}"},
        "summary": flow.summary,
        "tags": [{"name": flow.party}],
        "messages": [{"$ref": f"#/channels/{channel_id}/messages/{m}"} for m in wanted],
    }
    if flow.durable:
        operation["x-maestro-durable"] = flow.durable
    if reply is not None:
        operation["reply"] = reply
    return operation


def _add_operations(
    operations: dict[str, Any],
    channel_id: str,
    channel_messages: Sequence[str],
    flows: Iterable[Flow],
    reply: dict[str, Any] | None = None,
) -> None:
    for flow in flows:
        op_id = f"{flow.party}_{flow.action}_{channel_id}"
        if op_id in operations:
            raise SchemaError(f"{flow.party} {flow.action}s on {channel_id} twice: merge the flows")
        operations[op_id] = _operation(channel_id, channel_messages, flow, reply)


def asyncapi() -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document: every subject of maestro/topics.py, who sends and receives, payloads."""
    declared = {**declared_topics(), **declared_endpoints()}
    missing = sorted(set(declared) - set(FLOWS))
    stray = sorted(set(FLOWS) - set(declared))
    if missing or stray:
        raise SchemaError(f"flows missing for {missing}, flows for unknown names {stray}")

    types = wire_types()
    _, schemas = msgspec.json.schema_components(types, ref_template="#/components/schemas/{name}")
    for type_ in types:
        if len(_members(type_)) > 1:
            (union,) = msgspec.json.schema_components([type_], ref_template="#/components/schemas/{name}")[0]
            # An AsyncAPI Schema's discriminator is the tag's property name, not OpenAPI's object.
            union["discriminator"] = union["discriminator"]["propertyName"]
            schemas[type_name(type_)] = {"title": type_name(type_), **union}

    messages: dict[str, Any] = {}
    streams = _streams()
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}

    for name, topic in declared_topics().items():
        channel_id = _camel(name)
        members = [type_name(t) for t in _members(topic.type)]
        for member in _members(topic.type):
            messages[type_name(member)] = _message_component(member, _STREAM_HEADERS)
        channel: dict[str, Any] = {
            "address": topic.pattern,
            "title": name,
            "description": topic.description,
            "parameters": {token: _PARAMETERS[token] for token in topic.tokens},
            "messages": {m: {"$ref": f"#/components/messages/{m}"} for m in members},
        }
        stream = streams.get(topic.all)
        if stream is not None:
            channel["x-maestro-stream"] = {
                "name": stream.name,
                "retention": str(getattr(stream.retention, "value", stream.retention)),
            }
        channels[channel_id] = channel
        _add_operations(operations, channel_id, members, FLOWS[name])

    for name, endpoint in declared_endpoints().items():
        channel_id = _camel(name)
        reply_id = f"{channel_id}Reply"
        request_name, response_name = type_name(endpoint.request), type_name(endpoint.response)
        for type_ in (endpoint.request, endpoint.response):
            messages[type_name(type_)] = _message_component(type_, None)
        channels[channel_id] = {
            "address": endpoint.subject,
            "title": name,
            "description": f"{endpoint.description} (request/reply, NATS micro service "
            f"`{endpoint.service}`, endpoint `{endpoint.name}`)",
            "messages": {request_name: {"$ref": f"#/components/messages/{request_name}"}},
        }
        channels[reply_id] = {
            "address": None,
            "title": f"{name} reply",
            "description": f"The caller's inbox (the NATS reply subject) for answers to {endpoint.subject}",
            "messages": {
                response_name: {"$ref": f"#/components/messages/{response_name}"},
                _ERROR_MESSAGE: {"$ref": f"#/components/messages/{_ERROR_MESSAGE}"},
            },
        }
        reply = {
            "channel": {"$ref": f"#/channels/{reply_id}"},
            "messages": [
                {"$ref": f"#/channels/{reply_id}/messages/{response_name}"},
                {"$ref": f"#/channels/{reply_id}/messages/{_ERROR_MESSAGE}"},
            ],
        }
        _add_operations(operations, channel_id, [request_name], FLOWS[name], reply)
        bindings = {"nats": {"queue": endpoint.service, "bindingVersion": "0.1.0"}}
        for flow in FLOWS[name]:
            if flow.action == "receive":
                operations[f"{flow.party}_receive_{channel_id}"]["bindings"] = bindings
        if endpoint.partitions:
            partition_id = f"{channel_id}Partition"
            channels[partition_id] = {
                "address": endpoint.partition_pattern,
                "title": f"{name} partition",
                "description": f"{endpoint.description}, sent to the one replica that owns the tenant's "
                f"partition (crc32 of the tenant mod {endpoint.partitions}); when nobody owns it, to "
                f"{endpoint.subject}",
                "parameters": {"partition": _PARAMETERS["partition"]},
                "messages": {request_name: {"$ref": f"#/components/messages/{request_name}"}},
            }
            _add_operations(operations, partition_id, [request_name], FLOWS[name], reply)
            bindings = {"nats": {"queue": f"{endpoint.service}-p", "bindingVersion": "0.1.0"}}
            for flow in FLOWS[name]:
                if flow.action == "receive":
                    operations[f"{flow.party}_receive_{partition_id}"]["bindings"] = bindings

    for bucket, type_, key in STORED:
        channel_id = _camel(bucket)
        name = type_name(type_)
        messages[name] = _message_component(type_, None)
        channels[channel_id] = {
            "address": f"$KV.{bucket}.{{{key}}}",
            "title": bucket,
            "description": f"JetStream key-value bucket {bucket}: one {name} per {key}, updated by revision",
            "parameters": {key: _PARAMETERS[key]},
            "messages": {name: {"$ref": f"#/components/messages/{name}"}},
        }
        _add_operations(
            operations,
            channel_id,
            [name],
            (
                Flow(
                    "orchestrator", "send", "Write each task's record on every transition (compare-and-set)"
                ),
                Flow(
                    "client", "receive", "Read a task's current record (`maestro status`, GET /v1/tasks/{id})"
                ),
            ),
        )

    messages[_ERROR_MESSAGE] = _error_component()
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Maestro",
            "version": "v1",
            "description": "Maestro's wire contract: every subject the services exchange msgspec-encoded "
            "JSON messages on, who sends and who receives each, and the payloads.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": re.sub(r"^nats://", "", DEFAULT_URL),
                "protocol": "nats",
                "description": "the JetStream server `maestro up` starts, or MAESTRO_NATS_URL",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"schemas": schemas, "messages": messages},
    }


# -- files ------------------------------------------------------------------------------------------
def _dump(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def render() -> dict[str, str]:
    """Every generated file's name and exact text."""
    files = {f"{type_name(t)}.json": _dump(json_schema(t)) for t in (*wire_types(), *DOCUMENTS)}
    files[ASYNCAPI_FILE] = _dump(asyncapi())
    files[OPENAPI_FILE] = _dump(openapi.document())
    return dict(sorted(files.items()))


def stale(directory: Path, files: dict[str, str]) -> list[str]:
    """Names of files in `directory` that differ from `files`, are missing, or are no longer generated."""
    out = [
        name
        for name, text in files.items()
        if not (directory / name).is_file() or (directory / name).read_text(encoding="utf-8") != text
    ]
    out += [p.name for p in directory.glob("*.json") if p.name not in files]
    return sorted(out)


def write(directory: Path, files: dict[str, str]) -> list[str]:
    """Bring `directory` up to date; returns the names it wrote or removed."""
    changed = stale(directory, files)
    directory.mkdir(parents=True, exist_ok=True)
    for name in changed:
        path = directory / name
        if name in files:
            path.write_text(files[name], encoding="utf-8")
        else:
            path.unlink()
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m maestro.schema [--check] [--dir DIR]`."""
    parser = argparse.ArgumentParser(prog="python -m maestro.schema", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 listing stale files, write nothing")
    parser.add_argument("--dir", type=Path, default=SCHEMA_DIR, help=f"output folder (default {SCHEMA_DIR})")
    args = parser.parse_args(argv)
    files = render()
    if args.check:
        changed = stale(args.dir, files)
        for name in changed:
            print(f"stale: {args.dir / name}", file=sys.stderr)
        if changed:
            print("run `make schema` to regenerate", file=sys.stderr)
        return 1 if changed else 0
    for name in write(args.dir, files):
        print(f"{'wrote' if name in files else 'removed'} {args.dir / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
