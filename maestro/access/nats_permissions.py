"""Who may publish and subscribe to what on NATS: one table of principals, as data (no I/O).

A principal is a NATS user: each service (`guard`, `budget`, `orchestrator`, `agents`), `admin` (the
operator's CLI, which may do everything) and one publisher per tenant. maestro/access/nats_config.py renders
this table into a nats-server configuration. The rules it enforces:

- only the guard and the orchestrator's dispatcher hand tasks to the agents (`maestro.v1.task.>`);
- only the budget serves `maestro.v1.budget.>`; the others request the operations they need; only admin and
  the orchestrator (whose API asks for an operator's token: services/orchestrator/admin_api.py) may `set` a
  budget, write the policy bundle or the API's tokens;
- only the orchestrator writes task and workflow records; only the budget writes ledgers;
- the agents (which run tenants' commands) write their own buckets, events and artifacts, read only their
  tasks, and write neither records, nor budgets, nor tasks;
- a tenant's publisher publishes only its own request subject (and claims task ids, in a bucket whose keys
  the server lets be written once: maestro/topology.py), reads only its own events through a consumer whose
  filter the server checks, and touches nothing else;
- nobody but admin deletes a stream or purges one, except the orchestrator's purges of the waiting stream
  (the dispatcher removes what it handed over) and the agents' of the artifacts' store (an object replaced);
- every user has its own reply inbox, `_INBOX_<its public key>`, so nobody reads another's replies; a
  service answers requests through the server's `allow_responses` (it may reply to what it was asked,
  nothing more).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from maestro import topics
from maestro.settings import Settings
from maestro.topology import topology

ADMIN = "admin"
GUARD = "guard"
BUDGET = "budget"
ORCHESTRATOR = "orchestrator"
AGENTS = "agents"
SERVICES = (GUARD, BUDGET, ORCHESTRATOR, AGENTS)
"""The services, each a principal of its own (every replica of one service shares its credentials)."""
TENANT_PREFIX = "tenant-"


def tenant_principal(tenant: str) -> str:
    """The principal of one tenant's publisher: `tenant-<tenant>`."""
    topics.REQUESTS.subject(tenant)  # raises SubjectError for a name that is no subject token
    return TENANT_PREFIX + tenant


def tenant_of(principal: str) -> str | None:
    """The tenant whose publisher a principal is, or None for a service or admin."""
    return principal[len(TENANT_PREFIX) :] if principal.startswith(TENANT_PREFIX) else None


@dataclass(frozen=True)
class Permissions:
    """What one NATS user may do: subjects (and filters) it may publish and subscribe to, and those it may
    not even where an allowed filter would match (a deny wins)."""

    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    publish_deny: tuple[str, ...] = ()
    subscribe_deny: tuple[str, ...] = ()
    responses: bool = False
    """Whether it may answer the requests it receives (the reply subject of each, once)."""

    def may_publish(self, subject: str) -> bool:
        """Whether the server lets this user publish on `subject` (not as a reply it was asked for)."""
        return _matched(self.publish, subject) and not _matched(self.publish_deny, subject)

    def may_subscribe(self, subject: str) -> bool:
        """Whether the server lets this user subscribe to `subject` (a subject or a filter)."""
        return _matched(self.subscribe, subject) and not _matched(self.subscribe_deny, subject)


def _matched(filters: Iterable[str], subject: str) -> bool:
    return any(_matches(f, subject) for f in filters)


def _matches(filter_: str, subject: str) -> bool:
    """NATS's matching, token by token: `*` takes one token, a last `>` one or more."""
    wanted, tokens = filter_.split("."), subject.split(".")
    for i, token in enumerate(wanted):
        if token == ">":
            return len(tokens) > i
        if i >= len(tokens) or (token != "*" and token != tokens[i]):
            return False
    return len(tokens) == len(wanted)


@dataclass(frozen=True)
class _Streams:
    """The names the table is built from, derived once from the topology."""

    all: tuple[str, ...] = field(default_factory=lambda: topology(Settings()).stream_names)


def _kv(bucket: str) -> str:
    return topics.kv_stream(bucket)


_ANY = "*"
"""Any stream of the account's (which holds Maestro's alone)."""


def _reads(*streams: str) -> list[str]:
    """Reading stored messages of these streams (or of any: _ANY): by sequence or subject (direct or through
    the leader), and with consumers of any name and filter, pulled and acked."""
    subjects: list[str] = []
    for stream in streams:
        subjects += [
            topics.js_api("STREAM", "INFO", stream),
            topics.js_api("DIRECT", "GET", stream),
            topics.js_api("DIRECT", "GET", stream, ">"),
            topics.js_api("STREAM", "MSG", "GET", stream),
            topics.js_api("CONSUMER", "CREATE", stream),
            topics.js_api("CONSUMER", "CREATE", stream, ">"),
            topics.js_api("CONSUMER", "DURABLE", "CREATE", stream, "*"),
            topics.js_api("CONSUMER", "INFO", stream, "*"),
            topics.js_api("CONSUMER", "DELETE", stream, "*"),
            topics.js_api("CONSUMER", "MSG", "NEXT", stream, "*"),
            topics.js_ack_filter(stream),
        ]
    return subjects


_EVERY_SERVICE_PUBLISHES = [
    topics.js_api("INFO"),
    topics.js_api("STREAM", "LIST"),
    topics.js_api("STREAM", "NAMES"),
    topics.JS_FLOW_CONTROL,
    topics.DLQ.all,  # every consumer dead-letters what it cannot handle (maestro/bus.py)
]


def _endpoint_subjects(*endpoints: topics.Endpoint[Any, Any]) -> list[str]:
    """The subjects to request these endpoints on: each one's own, and its partitions'."""
    subjects: list[str] = []
    for endpoint in endpoints:
        subjects.append(endpoint.subject)
        if endpoint.partitions:
            subjects.append(f"{endpoint.subject}.*")
    return subjects


_BUDGET_ALL = "maestro.v1.budget.>"
"""Every budget endpoint, every partition: what the budget alone serves."""


def permissions(principal: str, inbox: str) -> Permissions:
    """The permissions of `principal` whose reply inbox prefix is `inbox` (topics.inbox_prefix of its key);
    raises ValueError for a principal that is none of the services, admin or a tenant's publisher."""
    own_inbox = f"{inbox}.>"
    streams = _Streams().all
    if principal == ADMIN:
        return Permissions(publish=(">",), subscribe=(">",), responses=True)
    if principal == GUARD:
        return Permissions(
            publish=(
                *_EVERY_SERVICE_PUBLISHES,
                *_reads(_ANY),
                topics.EVENTS.all,
                topics.DECISION_TALLIES.all,  # what it decided, counted (the orchestrator reads: _reads)
                topics.TASKS.all,  # with fair dispatch off, the guard hands tasks over itself
                topics.WAITING.all,
                *_endpoint_subjects(topics.BUDGET_RESERVE, topics.BUDGET_RELEASE, topics.BUDGET_GET),
                topics.kv_filter(topics.BUCKET_PARKED),
                topics.kv_filter(topics.BUCKET_CLAIMS),
            ),
            subscribe=(own_inbox,),
            publish_deny=_destructive(streams),
        )
    if principal == BUDGET:
        return Permissions(
            publish=(
                *_EVERY_SERVICE_PUBLISHES,
                *_reads(_ANY),
                topics.BUDGET_EVENTS.all,
                topics.kv_filter(topics.BUCKET_BUDGET),
                # Replicas split the partitions between the ones that answer a ping.
                topics.service_ping_subject(topics.BUDGET_SERVICE),
            ),
            subscribe=(own_inbox, _BUDGET_ALL, topics.SERVICE_DISCOVERY),
            publish_deny=_destructive(streams),
            responses=True,
        )
    if principal == ORCHESTRATOR:
        return Permissions(
            publish=(
                *_EVERY_SERVICE_PUBLISHES,
                *_reads(_ANY),
                # It provisions what is missing (maestro/topology.py), but deletes nothing.
                *(topics.js_api("STREAM", verb, s) for s in streams for verb in ("CREATE", "UPDATE")),
                topics.EVENTS.all,
                topics.TIMERS.all,
                topics.WORKFLOW_EVENTS.all,
                topics.STOP_NOTICES.all,
                topics.TASKS.all,
                topics.REDISPATCH.all,
                topics.WAITING.all,
                topics.APPROVALS.all,
                topics.REQUESTS.all,  # the API's submissions and the workflows' steps
                topics.WORKFLOWS.all,
                topics.GATE_DECISIONS.all,  # the API's deploy gate records each decision it makes
                *_endpoint_subjects(topics.BUDGET_RESERVE, topics.BUDGET_RELEASE, topics.BUDGET_GET),
                # The API's admin routes, behind an operator's token (services/orchestrator/admin_api.py):
                # what admin does over NATS, the API does for an operator over HTTP.
                *_endpoint_subjects(topics.BUDGET_SET),
                topics.kv_filter(topics.BUCKET_POLICY),
                topics.kv_filter(topics.BUCKET_TOKENS),
                topics.kv_filter(topics.BUCKET_TASKS),
                topics.kv_filter(topics.BUCKET_WORKFLOWS),
                topics.kv_filter(topics.BUCKET_ATTEMPTS),
                topics.kv_filter(topics.BUCKET_CLAIMS),
                # Replicas run for the lead, and those that do not lead tell the leader what they fold.
                topics.kv_filter(topics.BUCKET_LEASES),
                topics.LEADER_NEWS.all,
                # GitHub's webhook (services/orchestrator/hooks_api.py): each delivery queued once.
                topics.HOOKS.all,
                topics.kv_filter(topics.BUCKET_DELIVERIES),
                # The dispatcher deletes what it handed over from the waiting stream.
                topics.message_delete_subject(topics.STREAM_WAITING),
                topics.stream_purge_subject(topics.STREAM_WAITING),
            ),
            subscribe=(
                own_inbox,
                topics.WORKFLOW_CONTROL.subject,
                topics.DISPATCH_WAITS.subject,
                topics.LEADER_NEWS.all,
                topics.SERVICE_DISCOVERY,
            ),
            publish_deny=_destructive(streams, but=(topics.STREAM_WAITING,)),
            responses=True,
        )
    if principal == AGENTS:
        own = (
            topics.STREAM_TASKS,
            _kv(topics.BUCKET_WORK),
            _kv(topics.BUCKET_ATTEMPTS),
            _kv(topics.BUCKET_WORKERS),
            _kv(topics.BUCKET_POLICY),  # read, never written: what a task may run in its sandbox
            topics.object_store_stream(topics.STORE_ARTIFACTS),
        )
        return Permissions(
            publish=(
                *_EVERY_SERVICE_PUBLISHES,
                *_reads(*own),
                topics.js_api("STREAM", "INFO", _ANY),  # /readyz: is every stream there?
                topics.EVENTS.all,
                *_endpoint_subjects(topics.BUDGET_COMMIT, topics.BUDGET_RELEASE),
                topics.kv_filter(topics.BUCKET_WORK),
                topics.kv_filter(topics.BUCKET_ATTEMPTS),
                topics.kv_filter(topics.BUCKET_WORKERS),
                topics.object_store_filter(topics.STORE_ARTIFACTS),
                # Storing an object under a name in use purges the replaced one's chunks.
                topics.stream_purge_subject(topics.object_store_stream(topics.STORE_ARTIFACTS)),
            ),
            subscribe=(own_inbox, topics.STOP_NOTICES.all),
            publish_deny=(
                *_destructive(streams, but=(topics.object_store_stream(topics.STORE_ARTIFACTS),)),
                topics.TASKS.all,
                topics.kv_filter(topics.BUCKET_TASKS),
                topics.kv_filter(topics.BUCKET_BUDGET),
            ),
        )
    tenant = tenant_of(principal)
    if tenant is None:
        raise ValueError(f"no such principal: {principal!r}")
    return _tenant(tenant, own_inbox, streams)


def _tenant(tenant: str, own_inbox: str, streams: Iterable[str]) -> Permissions:
    # Events are read through a consumer whose filter is named in the request's subject (nats-py does so for
    # a named consumer with one filter), so the server checks it is this tenant's. Maestro's own durables on
    # the events stream are denied by name: pulling from one would take the orchestrator's events.
    events = topics.STREAM_EVENTS
    own_events = f"{topics.EVENTS.prefix}.{tenant}.>"
    durables = (topics.DURABLE_ORCHESTRATOR,)
    return Permissions(
        publish=(
            topics.REQUESTS.subject(tenant),
            topics.kv_filter(topics.BUCKET_CLAIMS),
            topics.js_api("INFO"),
            topics.js_api("STREAM", "LIST"),
            # A claim that exists is read back: a request sent again, or a conflict (maestro/claims.py)?
            topics.js_api("STREAM", "MSG", "GET", _kv(topics.BUCKET_CLAIMS)),
            topics.js_api("CONSUMER", "CREATE", events, "*", own_events),
            topics.js_api("CONSUMER", "MSG", "NEXT", events, "*"),
            topics.js_api("CONSUMER", "INFO", events, "*"),
            topics.js_api("CONSUMER", "DELETE", events, "*"),
        ),
        subscribe=(own_inbox,),
        publish_deny=(
            *(topics.js_api("CONSUMER", verb, events, d) for d in durables for verb in ("INFO", "DELETE")),
            *(topics.js_api("CONSUMER", "MSG", "NEXT", events, d) for d in durables),
            *(topics.js_api("CONSUMER", "CREATE", events, d, ">") for d in durables),
            *_destructive(streams),
        ),
    )


def _destructive(streams: Iterable[str], but: Iterable[str] = ()) -> tuple[str, ...]:
    """The JetStream API requests that lose data (delete or purge a stream, delete a message), for every
    stream of Maestro's but those named; and every stream's deletion, whatever its name."""
    kept = set(but)
    denied = [topics.js_api("STREAM", "DELETE", _ANY)]
    if not kept:
        return (
            *denied,
            topics.js_api("STREAM", "PURGE", _ANY),
            topics.js_api("STREAM", "MSG", "DELETE", _ANY),
        )
    for stream in streams:
        if stream not in kept:
            denied += [topics.stream_purge_subject(stream), topics.message_delete_subject(stream)]
    return tuple(denied)


def principals(tenants: Iterable[str]) -> tuple[str, ...]:
    """Every principal of a mesh serving these tenants: admin, the services, one publisher per tenant."""
    return (ADMIN, *SERVICES, *(tenant_principal(t) for t in sorted(set(tenants))))
