"""Judging what `maestro doctor` read: facts in, findings out, each one line with what to do. No I/O.

The checks here are of what Maestro runs on: the server, and the streams, buckets and store that
maestro/topology.py provisions for these settings, and the durables maestro/backlog.py names with the consumer
settings every durable is created with (maestro/consuming.py); maestro/doctor/work.py checks the work in
flight. A finding is `ok`, a `warn`ing (worth a look; the exit code stays 0) or a `problem` (exit 1).
"""

from __future__ import annotations

from collections.abc import Iterator
from enum import Enum
from typing import Any

from nats.js.api import ConsumerConfig, StreamConfig

from maestro import topics, topology
from maestro.backlog import ConsumerLag
from maestro.consuming import shared_config
from maestro.doctor.facts import (
    READ_STREAMS,
    READ_WORKERS,
    Facts,
)
from maestro.doctor.findings import Finding, counted
from maestro.doctor.work import dead_letters, overdue_holds, services, stuck_tasks, workers
from maestro.settings import Settings

BACKLOG_WARN = 1000
"""Messages waiting for a consumer past which its backlog is worth a look (more replicas of its service)."""
REQUIRED_DURABLES = frozenset(
    {
        topics.DURABLE_GUARD,
        topics.DURABLE_GUARD_APPROVALS,
        topics.DURABLE_ORCHESTRATOR,
        topics.DURABLE_ORCHESTRATOR_WORKFLOWS,
    }
)
"""Durables the guard and the orchestrator create whenever they start; the review consumers exist only
with a GitHub repository connected, and an agents' one once its role's first agent started."""
MIN_SERVER = (2, 12)
"""The oldest nats-server Maestro runs on: its timers and retries are message schedules (ADR-51, 2.12)."""
_SERIOUS_DRIFT = frozenset({"subjects", "retention", "storage"})
"""Settings of a stream whose drift loses or misroutes messages (the others cost durability or space)."""
_PROVISION = (
    "start the orchestrator (it creates what is missing; so does any service with admin's or the "
    "orchestrator's NATS credentials)"
)


def diagnose(facts: Facts, settings: Settings) -> list[Finding]:
    """Every finding about what was read, in the order of the checks above."""
    return [
        *server(facts),
        *unread(facts),
        *streams(facts, settings),
        *consumers(facts, settings),
        *autoscaling(facts, settings),
        *dead_letters(facts),
        *stuck_tasks(facts),
        *overdue_holds(facts, settings),
        *services(facts),
        *workers(facts, settings),
    ]


def server(facts: Facts) -> Iterator[Finding]:
    """The server answered; its JetStream must too, and it must be recent enough."""
    s = facts.server
    if _release(s.version) < MIN_SERVER:
        yield Finding(
            "server",
            s.url,
            "problem",
            f"nats-server {s.version} is older than {'.'.join(map(str, MIN_SERVER))}: the orchestrator's "
            "timers and retries are JetStream message schedules",
            f"upgrade nats-server to {'.'.join(map(str, MIN_SERVER))} or later",
        )
    elif s.jetstream:
        yield Finding("server", s.url, "ok", f"nats-server {s.version}, JetStream enabled")
    if not s.jetstream:
        yield Finding(
            "server",
            s.url,
            "problem",
            f"nats-server {s.version} answers but its JetStream does not",
            "enable JetStream on the server (`jetstream {}` in its config, or -js), with a store_dir",
        )


def _release(version: str) -> tuple[int, ...]:
    """The leading numbers of a version (`2.12.1-RC.2` -> (2, 12, 1)); () when it has none."""
    numbers = []
    for part in version.split("-")[0].split("."):
        if not part.isdigit():
            break
        numbers.append(int(part))
    return tuple(numbers) if numbers else (99,)


def unread(facts: Facts) -> Iterator[Finding]:
    """What could not be read: its checks are left out, which is itself worth a look."""
    for u in facts.unread:
        yield Finding(
            "read",
            u.what,
            "warn",
            f"could not read {u.what}: {u.why}",
            "run doctor with admin's NATS credentials (MAESTRO_NATS_CREDS), or retry when the server answers",
        )


def streams(facts: Facts, settings: Settings) -> Iterator[Finding]:
    """Every stream, bucket and store of maestro/topology.py present, with the settings it would give it."""
    if facts.could_not_read(READ_STREAMS) or not facts.server.jetstream:
        return
    wanted = topology.topology(settings)
    for stream in wanted.streams:
        name = str(stream.name)
        yield from _stream(
            facts, "stream", name, name, lambda c, stream=stream: topology.stream_drift(c, stream)
        )
    for bucket in wanted.buckets:
        name = str(bucket.bucket)
        yield from _stream(
            facts,
            "bucket",
            name,
            topics.kv_stream(name),
            lambda c, bucket=bucket: topology.bucket_drift(c, bucket),
        )
    for store in wanted.stores:
        name = str(store.bucket)
        yield from _stream(
            facts,
            "store",
            name,
            topics.object_store_stream(name),
            lambda c, store=store: topology.store_drift(c, store),
        )


def _stream(facts: Facts, check: str, name: str, stream: str, drift: Any) -> Iterator[Finding]:
    info = facts.streams.get(stream)
    if info is None:
        yield Finding(check, name, "problem", f"{stream} is missing", _PROVISION)
        return
    drifts: list[topology.Drift] = drift(info.config)
    if not drifts:
        yield Finding(check, name, "ok", _described(info.config, info.state.messages))
        return
    serious = any(d.setting in _SERIOUS_DRIFT for d in drifts)
    said = "; ".join(f"{d.setting} is {_shown(d.have)}, Maestro makes it {_shown(d.want)}" for d in drifts)
    yield Finding(
        check,
        name,
        "problem" if serious else "warn",
        f"{stream}: {said}",
        "start a service with these settings (it updates the stream), or check that this shell's MAESTRO_* "
        "(MAESTRO_STREAM_REPLICAS, MAESTRO_*_MAX_AGE_S) are the services'",
    )


def _described(config: StreamConfig, messages: int) -> str:
    retention = _shown(config.retention)
    replicas = config.num_replicas or 1
    age = f", kept {_age(config.max_age)}" if config.max_age else ""
    return f"{retention}, {counted(replicas, 'replica')}{age}, {counted(messages, 'message')}"


def _shown(value: Any) -> str:
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def _age(seconds: float) -> str:
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def consumers(facts: Facts, settings: Settings) -> Iterator[Finding]:
    """Each durable present where its service needs it, configured as the bus makes it, and keeping up."""
    backlog = facts.backlog
    if backlog is None:
        return
    missing_streams = {d.stream for d in backlog.missing if d.stream not in facts.streams}
    for durable in backlog.missing:
        if durable.consumer in REQUIRED_DURABLES and durable.stream not in missing_streams:
            owner = _owner(durable.consumer)
            yield Finding(
                "consumer",
                durable.consumer,
                "problem",
                f"{durable.stream} has no consumer {durable.consumer}: the {owner} never started against "
                "this server, or the consumer was deleted",
                f"start (or restart) the {owner}: it creates its consumer",
            )
    shared = shared_config(settings)
    served = facts.served_roles
    agents = {topics.agents_durable(role): role for role in settings.roles}
    never_pulled = _backlog_consumers(settings)
    for lag in backlog.consumers:
        if lag.consumer in never_pulled:
            continue  # never pulled: the autoscaling check reads it
        role = agents.get(lag.consumer)
        if role is not None and role not in served and not facts.could_not_read(READ_WORKERS):
            continue  # the workers check says it, once
        yield _consumer(lag, shared.ack_wait, shared.max_deliver)


def _backlog_consumers(settings: Settings) -> dict[str, ConsumerConfig]:
    """The backlog consumers topology.py has the dispatcher make, by name, for the roles of `settings`."""
    if not settings.fair_dispatch:
        return {}
    names = {topics.backlog_durable(role) for role in settings.roles}
    return {str(c.durable_name): c for c in topology.backlog_consumers() if c.durable_name in names}


def autoscaling(facts: Facts, settings: Settings) -> Iterator[Finding]:
    """Each role's backlog consumer present on the waiting stream with its filter: its pending count is the
    role's tasks waiting for their turn, which KEDA scales the role's agents on."""
    backlog, wanted = facts.backlog, _backlog_consumers(settings)
    if backlog is None or not wanted or topics.STREAM_WAITING not in facts.streams:
        return
    counts = []
    missing = {d.consumer for d in backlog.missing}
    for name, config in wanted.items():
        lag = backlog.consumer(name)
        if lag is None:
            if name not in missing:
                continue  # not asked for
            yield Finding(
                "backlog",
                name,
                "warn",
                f"{topics.STREAM_WAITING} has no consumer {name}: an autoscaler reading it sees no backlog",
                "restart the orchestrator: its dispatcher makes each role's backlog consumer when it starts",
            )
        elif lag.filter_subjects != (config.filter_subject,):
            yield Finding(
                "backlog",
                name,
                "warn",
                f"it counts {_shown(list(lag.filter_subjects))}, not {config.filter_subject}",
                f"delete it (nats consumer rm {topics.STREAM_WAITING} {name}) and restart the orchestrator",
            )
        else:
            counts.append(f"{name.removeprefix('backlog-')} {lag.pending}")
    if counts:
        yield Finding("backlog", topics.STREAM_WAITING, "ok", f"waiting for their turn: {', '.join(counts)}")


def _owner(consumer: str) -> str:
    """The service that runs a durable, by its name (`guard-approvals`: the guard)."""
    return consumer.partition("-")[0]


def _consumer(lag: ConsumerLag, ack_wait_s: float | None, max_deliver: int | None) -> Finding:
    name, where = lag.consumer, lag.stream
    if lag.max_deliver != max_deliver:
        return Finding(
            "consumer",
            name,
            "warn",
            f"on {where} it delivers a message at most {lag.max_deliver} times, then the server drops it "
            "(Maestro's consumers leave that to the bus, which dead-letters the last delivery)",
            f"delete it (nats consumer rm {where} {name}) and restart the {_owner(name)}",
        )
    if lag.ack_wait_s != ack_wait_s:
        return Finding(
            "consumer",
            name,
            "warn",
            f"on {where} its ack wait is {lag.ack_wait_s:g}s, these settings say {ack_wait_s:g}s",
            "give doctor the services' MAESTRO_ACK_WAIT_S, or restart the services with one value",
        )
    owner = _owner(name)
    counts = f"{lag.pending} pending, {lag.ack_pending} in progress, {lag.redelivered} redelivered"
    if lag.waiting == 0 and lag.ack_pending == 0:
        if lag.pending:
            return Finding(
                "consumer",
                name,
                "problem",
                f"on {where}: {counts}, and nobody pulls from it",
                f"start the {owner}: its messages wait for it",
            )
        return Finding(
            "consumer",
            name,
            "warn",
            f"on {where}: nobody pulls from it (nothing waits yet)",
            f"check that the {owner} runs",
        )
    if lag.redelivered:
        return Finding(
            "consumer",
            name,
            "warn",
            f"on {where}: {counts}",
            f"a handler fails or outlasts the ack wait: see the {owner}'s logs (and `maestro dlq ls`)",
        )
    if lag.pending >= BACKLOG_WARN:
        return Finding(
            "consumer",
            name,
            "warn",
            f"on {where}: a backlog of {counts}",
            f"run more replicas of the {owner}",
        )
    return Finding("consumer", name, "ok", f"on {where}: {counts}, {counted(lag.waiting, 'pull')} waiting")
