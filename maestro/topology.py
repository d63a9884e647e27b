"""Streams, key-value buckets and the object store, as data; `ensure` provisions them idempotently."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

from nats.js import JetStreamContext
from nats.js.api import (
    KeyValueConfig,
    ObjectStoreConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import BadRequestError

from maestro import topics
from maestro.settings import Settings

log = logging.getLogger(__name__)

# Finished work is read again only while its commit is retried (at most MAESTRO_MAX_RETRIES deliveries, about
# a second apart) or its outcome is not yet stored: a day is far more than that, and it bounds the bucket.
_FINISHED_WORK_TTL_S = 24 * 3600.0
_ATTEMPTS_TTL_S = 31 * 86_400.0
"""Longer than the longest back-off a retry policy can ask for (MAX_TIMEOUT_S, 30 days)."""
WORKER_TTL_S = 30.0
"""How long a worker's announcement lasts unless refreshed: after it, a dead agent's roles are unserved."""


@dataclass(frozen=True)
class Topology:
    """Everything Maestro provisions on a JetStream server."""

    streams: tuple[StreamConfig, ...]
    buckets: tuple[KeyValueConfig, ...]
    stores: tuple[ObjectStoreConfig, ...]


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
            log_of(
                topics.STREAM_BUDGET_EVENTS,
                topics.BUDGET_EVENTS,
                settings.event_max_age_s,
                "budget events: expired holds, thresholds crossed, overages, window rollovers",
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


async def ensure(js: JetStreamContext, settings: Settings) -> None:
    """Create or update every stream, bucket and store; safe to run any number of times, from any service."""
    wanted = topology(settings)
    for stream in wanted.streams:
        try:
            await js.add_stream(stream)
        except BadRequestError:
            # It exists with another configuration: bring it to ours.
            await js.update_stream(stream)
    for bucket in wanted.buckets:
        try:
            await js.create_key_value(bucket)
        except BadRequestError:
            # It exists with another configuration (an older Maestro's): bring its stream to ours, as
            # for the streams above, instead of failing every service's start.
            await _update_bucket(js, bucket)
    for store in wanted.stores:
        await js.create_object_store(str(store.bucket), config=store)
    log.debug("topology ensured")


async def _update_bucket(js: JetStreamContext, bucket: KeyValueConfig) -> None:
    current = (await js.stream_info(topics.kv_stream(str(bucket.bucket)))).config
    await js.update_stream(
        dataclasses.replace(
            current,
            description=bucket.description,
            max_msgs_per_subject=bucket.history,
            max_age=bucket.ttl or 0,
            num_replicas=bucket.replicas,
            allow_direct=bucket.direct,
        )
    )


async def is_provisioned(js: JetStreamContext) -> bool:
    """Whether every stream Maestro needs exists (for /readyz)."""
    try:
        for name in (topics.STREAM_REQUESTS, topics.STREAM_TASKS, topics.STREAM_EVENTS, topics.STREAM_DLQ):
            await js.stream_info(name)
    except Exception:
        return False
    return True
