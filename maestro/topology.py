"""Streams, key-value buckets and the object store, as data; `ensure` provisions them idempotently."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    KeyValueConfig,
    ObjectStoreConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import BadRequestError

from maestro import since, topics
from maestro.settings import Settings
from proto.v1 import ROLES

log = logging.getLogger(__name__)

# Finished work is read again only while its commit is retried (at most MAESTRO_MAX_RETRIES deliveries, about
# a second apart) or its outcome is not yet stored: a day is far more than that, and it bounds the bucket.
_FINISHED_WORK_TTL_S = 24 * 3600.0
_ATTEMPTS_TTL_S = 31 * 86_400.0
"""Longer than the longest back-off a retry policy can ask for (MAX_TIMEOUT_S, 30 days)."""
_HUMAN_TASKS_TTL_S = 90 * 86_400.0
"""Longer than a human task may wait and be worked on (SLAs of up to 30 days each, leases renewed)."""
_WRITE_ONCE = frozenset({topics.BUCKET_CLAIMS})
"""Buckets whose keys the server lets be written once and never again (a new value for a key that has one
is refused): a claim owns its task id forever, so a tenant's publisher may claim ids (the SDK does, to
answer a conflict at once) without being able to take over another tenant's."""
WORKER_TTL_S = 30.0
"""How long a worker's announcement lasts unless refreshed: after it, a dead agent's roles are unserved."""
GATE_MAX_AGE_S = 400 * 86_400.0
"""How long the deploy gate's decisions are kept: over a year, so an audit can ask why any deploy of the last
year went through (a decision is a few hundred bytes; a deploy pipeline asks a few times a deploy)."""
TALLY_MAX_AGE_S = since.LONGEST.total_seconds()
"""How long the guards' decision tallies are kept: as far back as a range over time may reach (7 days; a
tally is a few hundred bytes, one per guard and tenant with decisions every MAESTRO_TALLY_S)."""


@dataclass(frozen=True)
class Topology:
    """Everything Maestro provisions on a JetStream server."""

    streams: tuple[StreamConfig, ...]
    buckets: tuple[KeyValueConfig, ...]
    stores: tuple[ObjectStoreConfig, ...]

    @property
    def stream_names(self) -> tuple[str, ...]:
        """Every JetStream stream these make: the streams, then the buckets' and the stores' own."""
        return (
            *(str(s.name) for s in self.streams),
            *(topics.kv_stream(str(b.bucket)) for b in self.buckets),
            *(topics.object_store_stream(str(s.bucket)) for s in self.stores),
        )


def topology(settings: Settings) -> Topology:
    """The streams, buckets and stores for these settings."""
    replicas = settings.stream_replicas
    dedup = settings.duplicate_window_s

    def work_queue(name: str, topic: topics.Topic[Any], description: str) -> StreamConfig:
        # Each message is someone's work, deleted once acked; a resend inside the window is dropped.
        return StreamConfig(
            name=name,
            subjects=[topic.all],
            retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.FILE,
            num_replicas=replicas,
            duplicate_window=dedup,
            description=description,
        )

    def log_of(
        name: str, topic: topics.Topic[Any], max_age_s: float, description: str, **more: Any
    ) -> StreamConfig:
        # A record kept for `max_age_s`, read by anyone, acked by no one.
        return StreamConfig(
            name=name,
            subjects=[topic.all],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            num_replicas=replicas,
            max_age=max_age_s,
            description=description,
            **more,
        )

    def bucket(name: str, description: str, history: int = 1, ttl_s: float | None = None) -> KeyValueConfig:
        return KeyValueConfig(
            bucket=name,
            history=history,
            replicas=replicas,
            direct=True,
            storage=StorageType.FILE,
            description=description,
            ttl=ttl_s,
        )

    return Topology(
        streams=(
            work_queue(topics.STREAM_REQUESTS, topics.REQUESTS, "task requests waiting for the guard"),
            dataclasses.replace(
                work_queue(
                    topics.STREAM_TASKS,
                    topics.TASKS,
                    "allowed tasks waiting for an agent of their role, and retries scheduled for later",
                ),
                subjects=[topics.TASKS.all, topics.REDISPATCH.all],
                allow_msg_schedules=True,
            ),
            dataclasses.replace(
                log_of(
                    topics.STREAM_EVENTS,
                    topics.EVENTS,
                    settings.event_max_age_s,
                    "every lifecycle event: the audit log and the source of task state; and the "
                    "orchestrator's timers, message schedules that come due as events",
                    duplicate_window=dedup,
                    allow_direct=True,
                    allow_msg_schedules=True,
                ),
                subjects=[topics.EVENTS.all, topics.TIMERS.all, topics.WORKFLOW_EVENTS.all],
            ),
            StreamConfig(
                name=topics.STREAM_WAITING,
                subjects=[topics.WAITING.all],
                # Not a work queue: the dispatcher reads every waiting task's headers as it is stored (and all
                # of them again when it restarts), takes the one it picks by sequence, and deletes it once it
                # is handed over. Kept until then, however long that is.
                retention=RetentionPolicy.LIMITS,
                storage=StorageType.FILE,
                num_replicas=replicas,
                duplicate_window=dedup,
                allow_direct=True,
                description="allowed tasks waiting to be handed to their role's agents, fairly",
            ),
            work_queue(topics.STREAM_WORKFLOWS, topics.WORKFLOWS, "workflows waiting for the orchestrator"),
            work_queue(
                topics.STREAM_HOOKS, topics.HOOKS, "pull requests from GitHub waiting for their review"
            ),
            log_of(
                topics.STREAM_DLQ,
                topics.DLQ,
                settings.dlq_max_age_s,
                "messages that could not be handled, with the reason",
            ),
            work_queue(
                topics.STREAM_APPROVALS,
                topics.APPROVALS,
                "humans' decisions on tasks awaiting approval, waiting for the guard",
            ),
            work_queue(
                topics.STREAM_NOTIFY,
                topics.NOTIFICATIONS,
                "notifications (a human task's breached SLA) waiting for the notifier to deliver them",
            ),
            log_of(
                topics.STREAM_BUDGET_EVENTS,
                topics.BUDGET_EVENTS,
                settings.event_max_age_s,
                "budget events: expired holds, thresholds crossed, overages, window rollovers",
                duplicate_window=dedup,
            ),
            log_of(
                topics.STREAM_GATE,
                topics.GATE_DECISIONS,
                GATE_MAX_AGE_S,
                "the deploy gate's decisions: who asked about which commit, what was decided and why",
                duplicate_window=dedup,
            ),
            log_of(
                topics.STREAM_TALLIES,
                topics.DECISION_TALLIES,
                TALLY_MAX_AGE_S,
                "the guards' decisions per tenant and interval, by verdict and rule: the console's charts",
                duplicate_window=dedup,
            ),
        ),
        buckets=(
            bucket(topics.BUCKET_TASKS, "current record of each task"),
            bucket(topics.BUCKET_WORKFLOWS, "current record of each workflow, with its definition"),
            bucket(topics.BUCKET_BUDGET, "one ledger per tenant, for its current window (with its limits)"),
            bucket(topics.BUCKET_POLICY, "the policy bundle in force (one key: bundle)", history=5),
            bucket(topics.BUCKET_PARKED, "requests awaiting a human's approval, held by the guard"),
            bucket(topics.BUCKET_TOKENS, "the API's bearer tokens: grants and the hashes of their secrets"),
            bucket(
                topics.BUCKET_PEOPLE, "the people who do human work: skills, capacity, hours, availability"
            ),
            bucket(
                topics.BUCKET_HUMAN_TASKS,
                "human queues' tasks as admitted (instructions, inputs, form), for the people who claim them",
                ttl_s=_HUMAN_TASKS_TTL_S,
            ),
            bucket(topics.BUCKET_CLAIMS, "which tenant and content own each task id (one id is one task)"),
            bucket(
                topics.BUCKET_WORK,
                "finished work waiting to be paid for and reported, so a task never runs twice for it",
                ttl_s=_FINISHED_WORK_TTL_S,
            ),
            bucket(
                topics.BUCKET_ATTEMPTS,
                "the assignment of each task whose failed attempt may be retried, kept by its worker",
                ttl_s=_ATTEMPTS_TTL_S,
            ),
            bucket(
                topics.BUCKET_WORKERS,
                "running agents by role (<role>.<worker>), refreshed while they run",
                ttl_s=WORKER_TTL_S,
            ),
            bucket(
                topics.BUCKET_LEASES, "who leads what (the orchestrator replica that dispatches), renewed"
            ),
            bucket(
                topics.BUCKET_DELIVERIES,
                "GitHub webhook deliveries taken, so a redelivery starts nothing new",
                ttl_s=DELIVERIES_TTL_S,
            ),
        ),
        stores=(
            ObjectStoreConfig(
                bucket=topics.STORE_ARTIFACTS,
                replicas=replicas,
                storage=StorageType.FILE,
                description="files agents produce",
            ),
        ),
    )


DELIVERIES_TTL_S = 30 * 86_400.0
"""How long a webhook delivery is remembered: GitHub redelivers (by hand or API) those of the last 3 days."""


_NAME_IN_USE = 10058
"""JetStream's error code for a stream created again with another configuration than it has."""


class TopologyError(RuntimeError):
    """A stream, bucket or store is missing and this process may not create it; the text names it."""


_PROVISIONERS = "the orchestrator's or admin's credentials (maestro nats-config)"


async def ensure(js: JetStreamContext, settings: Settings) -> None:
    """Create what is missing and update what is out of date; safe to run any number of times, from any
    service. One listing of the streams shows what is there, so a process whose NATS permissions let it
    read but not create streams (every one but the orchestrator and admin: maestro/access) starts as long
    as everything exists. Raises TopologyError naming what is missing when it cannot create it."""
    wanted = topology(settings)
    existing = {info.config.name: info.config for info in await js.streams_info()}
    for stream in wanted.streams:
        name = str(stream.name)
        current = existing.get(name)
        if current is None and await _created(name, js.add_stream(stream)):
            continue
        current = current or (await js.stream_info(name)).config  # another process created it meanwhile
        if not _holds(current, stream):
            await _updating(name, js.update_stream(stream))
    for bucket in wanted.buckets:
        name = topics.kv_stream(str(bucket.bucket))
        current = existing.get(name)
        if current is None and await _created(name, js.create_key_value(bucket)):
            current = (await js.stream_info(name)).config  # the write-once rule is one update more
        current = current or (await js.stream_info(name)).config
        if (brought := _bucket_stream(current, bucket)) != current:
            await _updating(name, js.update_stream(brought))
    for store in wanted.stores:
        name = topics.object_store_stream(str(store.bucket))
        current = existing.get(name)
        if current is None:
            await _created(name, js.create_object_store(str(store.bucket), config=store))
        elif current.num_replicas != store.replicas:  # MAESTRO_STREAM_REPLICAS changed since it was made
            await _updating(name, js.update_stream(dataclasses.replace(current, num_replicas=store.replicas)))
    log.debug("topology ensured")


@dataclass(frozen=True)
class Drift:
    """One setting of a stream that differs on the server from what Maestro gives it."""

    setting: str
    """The StreamConfig field: `num_replicas`, `max_age`, `subjects`, ..."""
    have: Any
    want: Any


def stream_drift(current: StreamConfig, wanted: StreamConfig) -> list[Drift]:
    """The settings Maestro gives a stream that the server's copy does not have (those it leaves at their
    defaults the server may fill in: a schedule's stream allows roll-ups, a window is two minutes)."""
    have, defaults = current.as_dict(), _DEFAULTS.as_dict()
    return [
        Drift(k, getattr(current, k, None), getattr(wanted, k))
        for k, v in wanted.as_dict().items()
        if defaults.get(k) != v and have.get(k) != v
    ]


def bucket_drift(current: StreamConfig, bucket: KeyValueConfig) -> list[Drift]:
    """The settings of a bucket's stream that `ensure` would change (what an older Maestro left, or a
    MAESTRO_STREAM_REPLICAS that differs)."""
    return stream_drift(current, _bucket_stream(current, bucket))


def store_drift(current: StreamConfig, store: ObjectStoreConfig) -> list[Drift]:
    """The settings of an object store's stream that differ from what Maestro makes it with."""
    wanted = {"num_replicas": store.replicas, "description": store.description}
    return [Drift(k, getattr(current, k), v) for k, v in wanted.items() if getattr(current, k) != v]


def _holds(current: StreamConfig, wanted: StreamConfig) -> bool:
    """Whether a stream as configured on the server has every setting Maestro gives it."""
    return not stream_drift(current, wanted)


_DEFAULTS = StreamConfig()


def _bucket_stream(current: StreamConfig, bucket: KeyValueConfig) -> StreamConfig:
    """A bucket's stream as it is, with what Maestro sets on it (an older Maestro's bucket brought up to
    date, as the streams above are, instead of failing every service's start)."""
    return dataclasses.replace(
        current,
        description=bucket.description,
        max_msgs_per_subject=bucket.history,
        max_age=bucket.ttl or 0,
        num_replicas=bucket.replicas,
        allow_direct=bucket.direct,
        discard_new_per_subject=str(bucket.bucket) in _WRITE_ONCE,
    )


async def _created(name: str, creation: Awaitable[Any]) -> bool:
    """Whether `creation` created the stream; False when another process (a service starting at the same
    time) created it first, with another step of its configuration done already (so not the same)."""
    try:
        await creation
    except BadRequestError as exc:
        if exc.err_code != _NAME_IN_USE:
            raise
        return False
    except TimeoutError:
        # A request the server refuses for permissions is dropped (the error goes to the connection's error
        # callback): it is never answered.
        raise TopologyError(
            f"{name} does not exist and creating it was not answered: these NATS credentials may not create "
            f"it; start a service with {_PROVISIONERS} first"
        ) from None
    return True


async def _updating(name: str, update: Awaitable[Any]) -> None:
    try:
        await update
    except TimeoutError:
        log.warning(
            "%s is out of date and these NATS credentials may not update it: it is left as it is", name
        )


def backlog_consumers() -> tuple[ConsumerConfig, ...]:
    """One durable consumer of the waiting stream per role, which nobody pulls: its pending count is the
    role's tasks waiting for the dispatcher (tasks handed over are deleted from the stream, and leave its
    count), so an autoscaler reading a consumer's pending messages (KEDA's nats-jetstream scaler) sees the
    role's real backlog. The agents' own consumers hold only what the dispatcher handed over, which it keeps
    within the live agents' free slots: never more than they can start, and nothing while none runs."""
    return tuple(
        ConsumerConfig(
            durable_name=topics.backlog_durable(role),
            description=f"{role} tasks waiting for the dispatcher (never pulled: its pending count is read)",
            filter_subject=topics.WAITING.filter(role),
            # Explicit: should anything ever pull from it, what it took still counts (as ack pending).
            ack_policy=AckPolicy.EXPLICIT,
        )
        for role in ROLES
    )


async def ensure_backlog(js: JetStreamContext) -> None:
    """Create or update the waiting stream's backlog consumers (the dispatcher does, at its start)."""
    for consumer in backlog_consumers():
        await js.add_consumer(topics.STREAM_WAITING, consumer)


async def is_provisioned(js: JetStreamContext) -> bool:
    """Whether every stream Maestro needs exists (for /readyz)."""
    try:
        for name in (topics.STREAM_REQUESTS, topics.STREAM_TASKS, topics.STREAM_EVENTS, topics.STREAM_DLQ):
            await js.stream_info(name)
    except Exception:
        return False
    return True
