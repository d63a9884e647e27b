"""Streams, key-value buckets and the object store, as data; `ensure` provisions them idempotently."""

from __future__ import annotations

import logging
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Topology:
    """Everything Maestro provisions on a JetStream server."""

    streams: tuple[StreamConfig, ...]
    buckets: tuple[KeyValueConfig, ...]
    stores: tuple[ObjectStoreConfig, ...]


def topology(settings: Settings) -> Topology:
    """The streams, buckets and stores for these settings."""
    replicas = settings.stream_replicas
    return Topology(
        streams=(
            StreamConfig(
                name=topics.STREAM_REQUESTS,
                subjects=[topics.REQUESTS.all],
                retention=RetentionPolicy.WORK_QUEUE,
                storage=StorageType.FILE,
                num_replicas=replicas,
                duplicate_window=settings.duplicate_window_s,
                description="task requests waiting for the guard",
            ),
            StreamConfig(
                name=topics.STREAM_TASKS,
                subjects=[topics.TASKS.all],
                retention=RetentionPolicy.WORK_QUEUE,
                storage=StorageType.FILE,
                num_replicas=replicas,
                duplicate_window=settings.duplicate_window_s,
                description="allowed tasks waiting for an agent of their role",
            ),
            StreamConfig(
                name=topics.STREAM_EVENTS,
                subjects=[topics.EVENTS.all],
                retention=RetentionPolicy.LIMITS,
                storage=StorageType.FILE,
                num_replicas=replicas,
                max_age=settings.event_max_age_s,
                duplicate_window=settings.duplicate_window_s,
                allow_direct=True,
                description="every lifecycle event: the audit log and the source of task state",
            ),
            StreamConfig(
                name=topics.STREAM_DLQ,
                subjects=[topics.DLQ.all],
                retention=RetentionPolicy.LIMITS,
                storage=StorageType.FILE,
                num_replicas=replicas,
                max_age=settings.dlq_max_age_s,
                description="messages that could not be handled, with the reason",
            ),
            StreamConfig(
                name=topics.STREAM_APPROVALS,
                subjects=[topics.APPROVALS.all],
                retention=RetentionPolicy.WORK_QUEUE,
                storage=StorageType.FILE,
                num_replicas=replicas,
                duplicate_window=settings.duplicate_window_s,
                description="humans' decisions on tasks awaiting approval, waiting for the guard",
            ),
            StreamConfig(
                name=topics.STREAM_BUDGET_EVENTS,
                subjects=[topics.BUDGET_EVENTS.all],
                retention=RetentionPolicy.LIMITS,
                storage=StorageType.FILE,
                num_replicas=replicas,
                max_age=settings.event_max_age_s,
                duplicate_window=settings.duplicate_window_s,
                description="budget events: expired holds, thresholds crossed, overages, window rollovers",
            ),
        ),
        buckets=(
            KeyValueConfig(
                bucket=topics.BUCKET_TASKS,
                history=1,
                replicas=replicas,
                direct=True,
                storage=StorageType.FILE,
                description="current record of each task",
            ),
            KeyValueConfig(
                bucket=topics.BUCKET_BUDGET,
                history=1,
                replicas=replicas,
                direct=True,
                storage=StorageType.FILE,
                description="one ledger per tenant, for its current window (with its limits)",
            ),
            KeyValueConfig(
                bucket=topics.BUCKET_POLICY,
                history=5,
                replicas=replicas,
                direct=True,
                storage=StorageType.FILE,
                description="policy bundles, default and per tenant",
            ),
            KeyValueConfig(
                bucket=topics.BUCKET_PARKED,
                history=1,
                replicas=replicas,
                direct=True,
                storage=StorageType.FILE,
                description="requests awaiting a human's approval, held by the guard",
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
        await js.create_key_value(bucket)
    for store in wanted.stores:
        await js.create_object_store(str(store.bucket), config=store)
    log.debug("topology ensured")


async def is_provisioned(js: JetStreamContext) -> bool:
    """Whether every stream Maestro needs exists (for /readyz)."""
    try:
        for name in (topics.STREAM_REQUESTS, topics.STREAM_TASKS, topics.STREAM_EVENTS, topics.STREAM_DLQ):
            await js.stream_info(name)
    except Exception:
        return False
    return True
