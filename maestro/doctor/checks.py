"""Judging what `maestro doctor` read: facts in, findings out, each one line with what to do. No I/O.

Each check compares the facts with what Maestro itself would make or expect: the streams, buckets and store
that maestro/topology.py provisions for these settings, the consumer settings every durable is created
with (maestro/consuming.py), the durables maestro/backlog.py names, the micro services of maestro/topics.py.
A finding is `ok`, a `warn`ing (worth a look; the exit code stays 0) or a `problem` (exit 1).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, Literal

from nats.js.api import StreamConfig

from maestro import topics, topology
from maestro.backlog import ConsumerLag, Durable
from maestro.consuming import shared_config
from maestro.doctor.facts import (
    READ_HOLDS,
    READ_SERVICES,
    READ_STREAMS,
    READ_TASKS,
    READ_WORKERS,
    Facts,
)
from maestro.settings import Settings
from proto.v1 import TaskRecord

Severity = Literal["ok", "warn", "problem"]

EXIT_HEALTHY = 0
EXIT_PROBLEM = 1
EXIT_UNREACHABLE = 2

BACKLOG_WARN = 1000
"""Messages waiting for a consumer past which its backlog is worth a look (more replicas of its service)."""
STUCK_GRACE_S = 60.0
"""How long past its time-out a queued or running task may still be, before it counts as stuck: the
orchestrator's timer comes due at the deadline and ends it within a second or two."""
RECENT_DLQ_S = 3600.0
"""Dead letters newer than this make the DLQ a problem (it is growing); older ones only a warning."""
NEWEST_REASONS = 3
"""Dead letters whose reasons a DLQ finding quotes."""
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
MICRO_SERVICES = (topics.BUDGET_SERVICE, topics.ORCHESTRATOR_SERVICE)
"""The services that answer requests as nats micro services, so `$SRV.STATS` finds them."""
MIN_SERVER = (2, 12)
"""The oldest nats-server Maestro runs on: its timers and retries are message schedules (ADR-51, 2.12)."""
_SERIOUS_DRIFT = frozenset({"subjects", "retention", "storage"})
"""Settings of a stream whose drift loses or misroutes messages (the others cost durability or space)."""
_PROVISION = (
    "start the orchestrator (it creates what is missing; so does any service with admin's or the "
    "orchestrator's NATS credentials)"
)


@dataclass(frozen=True)
class Finding:
    """One line of the doctor's report."""

    check: str
    """What was checked: server, stream, bucket, store, consumer, dlq, tasks, holds, service, workers."""
    subject: str
    """What it is about: a stream, a consumer, a service, a role."""
    severity: Severity
    message: str
    fix: str = ""
    """What to do about it; empty when it is ok."""


def diagnose(facts: Facts, settings: Settings) -> list[Finding]:
    """Every finding about what was read, in the order of the checks above."""
    return [
        *server(facts),
        *unread(facts),
        *streams(facts, settings),
        *consumers(facts, settings),
        *dead_letters(facts),
        *stuck_tasks(facts),
        *overdue_holds(facts, settings),
        *services(facts),
        *workers(facts, settings),
    ]


def exit_code(findings: Iterable[Finding]) -> int:
    """1 when any finding is a problem, else 0 (warnings alone do not fail)."""
    return EXIT_PROBLEM if any(f.severity == "problem" for f in findings) else EXIT_HEALTHY


def unreachable(where: str, why: str) -> Finding:
    """The one finding when the server cannot be reached at all (exit 2)."""
    return Finding(
        "server",
        where,
        "problem",
        why,
        "start Maestro (maestro up) or NATS, or point MAESTRO_NATS_URL (and MAESTRO_NATS_CREDS) at it",
    )


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


def counted(n: int, noun: str) -> str:
    """`1 replica`, `3 replicas`."""
    return f"{n} {noun}{'s' if n != 1 else ''}"


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
            owner = _owner(durable)
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
    agents = {topics.agents_durable(role): role for role in settings.roles}  # type: ignore[arg-type]
    for lag in backlog.consumers:
        role = agents.get(lag.consumer)
        if role is not None and role not in served and not facts.could_not_read(READ_WORKERS):
            continue  # the workers check says it, once
        yield _consumer(lag, shared.ack_wait, shared.max_deliver)


def _owner(durable: Durable) -> str:
    return durable.consumer.partition("-")[0]


def _consumer(lag: ConsumerLag, ack_wait_s: float | None, max_deliver: int | None) -> Finding:
    name, where = lag.consumer, lag.stream
    if lag.max_deliver != max_deliver:
        return Finding(
            "consumer",
            name,
            "warn",
            f"on {where} it delivers a message at most {lag.max_deliver} times, then the server drops it "
            "(Maestro's consumers leave that to the bus, which dead-letters the last delivery)",
            f"delete it (nats consumer rm {where} {name}) and restart the {_owner(Durable(where, name))}",
        )
    if lag.ack_wait_s != ack_wait_s:
        return Finding(
            "consumer",
            name,
            "warn",
            f"on {where} its ack wait is {lag.ack_wait_s:g}s, these settings say {ack_wait_s:g}s",
            "give doctor the services' MAESTRO_ACK_WAIT_S, or restart the services with one value",
        )
    owner = _owner(Durable(where, name))
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


def dead_letters(facts: Facts) -> Iterator[Finding]:
    """The DLQ empty, or how deep it is with the newest reasons: a problem when a letter is recent."""
    depth = facts.backlog.dlq_depth if facts.backlog else None
    if depth is None:
        return  # not read, or the stream is missing (the streams check says so)
    if depth == 0:
        yield Finding("dlq", topics.STREAM_DLQ, "ok", "no dead letters")
        return
    newest = facts.letters[:NEWEST_REASONS]
    recent = bool(newest) and facts.read_at - newest[0].at < timedelta(seconds=RECENT_DLQ_S)
    reasons = "; ".join(f"#{x.seq} {x.origin}: {_one_line(x.reason)}" for x in newest)
    when = f", the newest {_ago(facts.read_at, newest[0].at)} ago" if newest else ""
    yield Finding(
        "dlq",
        topics.STREAM_DLQ,
        "problem" if recent else "warn",
        f"{depth} dead letter{'s' if depth != 1 else ''}{when}" + (f": {reasons}" if reasons else ""),
        "read them (maestro dlq ls, maestro dlq show SEQ), mend the cause, then maestro dlq replay",
    )


def _one_line(text: str, most: int = 120) -> str:
    line = " ".join(text.split())
    return line if len(line) <= most else line[: most - 1] + "…"


def _ago(now: datetime, then: datetime) -> str:
    seconds = max(0.0, (now - then).total_seconds())
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size:g}{unit}"
    return f"{seconds:.0f}s"


def deadline(record: TaskRecord) -> datetime | None:
    """When a queued or running task's time-out ends it, as its record tells (None: no time-out applies,
    or the record cannot tell: an attempt after the first started at a time the record does not keep)."""
    timeouts = record.timeouts
    if timeouts is None:
        return None
    if record.state == "queued" and timeouts.schedule_to_start_s is not None:
        since = record.next_retry_at or record.queued_at
        return since + timedelta(seconds=timeouts.schedule_to_start_s) if since else None
    if record.state == "running" and timeouts.start_to_close_s is not None and record.attempts <= 1:
        started = record.started_at
        return started + timedelta(seconds=timeouts.start_to_close_s) if started else None
    return None


def stuck_tasks(facts: Facts) -> Iterator[Finding]:
    """Tasks still queued or running well past their time-out: the orchestrator's timers are not firing."""
    if facts.could_not_read(READ_TASKS):
        return
    late = timedelta(seconds=STUCK_GRACE_S)
    stuck = []
    for record in facts.open_tasks:
        due = deadline(record)
        if due is not None and facts.read_at - due > late:
            stuck.append((due, record))
    if not stuck:
        yield Finding("tasks", "deadlines", "ok", f"{len(facts.open_tasks)} queued or running, none overdue")
        return
    stuck.sort(key=lambda found: found[0])
    for due, record in stuck:
        yield Finding(
            "tasks",
            record.id,
            "problem",
            f"{record.state} {_ago(facts.read_at, due)} past its time-out ({record.tenant}, "
            f"{record.role or 'no role'})",
            f"check that the orchestrator runs (its timers end timed-out tasks); if it does, maestro cancel "
            f"{record.id}",
        )


def overdue_holds(facts: Facts, settings: Settings) -> Iterator[Finding]:
    """Budget holds that outlived their ttl by more than two sweeps: no budget replica sweeps them."""
    if facts.could_not_read(READ_HOLDS):
        return
    grace = timedelta(seconds=2 * settings.budget_sweep_s)
    overdue = [h for h in facts.holds if facts.read_at - h.expired_at > grace]
    if not overdue:
        yield Finding("holds", topics.BUCKET_BUDGET, "ok", "no budget hold outlived its ttl")
        return
    by_tenant = Counter(h.tenant for h in overdue)
    money = sum(h.amount_micro_usd for h in overdue) / 1_000_000
    oldest = min(h.expired_at for h in overdue)
    tenants = ", ".join(f"{t} ({n})" for t, n in by_tenant.most_common(5))
    yield Finding(
        "holds",
        topics.BUCKET_BUDGET,
        "problem",
        f"{len(overdue)} holds (${money:.6f}) past their ttl, the oldest by {_ago(facts.read_at, oldest)}: "
        f"{tenants}",
        "start the budget service (its sweeper releases expired holds every MAESTRO_BUDGET_SWEEP_S)",
    )


def services(facts: Facts) -> Iterator[Finding]:
    """Each micro service answering, with its version and load."""
    if facts.could_not_read(READ_SERVICES):
        return
    for name in MICRO_SERVICES:
        instances = [s for s in facts.services if s.name == name]
        if not instances:
            yield Finding(
                "service",
                name,
                "problem",
                "no instance answers $SRV.STATS",
                f"start the {name} (maestro up starts every service; python -m services.{name} one)",
            )
            continue
        versions = ",".join(sorted({s.version for s in instances}))
        requests = sum(e.num_requests for s in instances for e in s.endpoints)
        errors = sum(e.num_errors for s in instances for e in s.endpoints)
        busy = [e.average_processing_time for s in instances for e in s.endpoints if e.num_requests]
        average = f", {max(busy) / 1e6:.1f} ms at most on average" if busy else ""
        yield Finding(
            "service",
            name,
            "ok",
            f"{len(instances)} running, version {versions}: {requests} requests, {errors} errors{average}",
        )


def workers(facts: Facts, settings: Settings) -> Iterator[Finding]:
    """Every role with a running agent; a role with none is a problem once tasks of it are queued."""
    if facts.could_not_read(READ_WORKERS):
        return
    queued: Counter[str] = Counter(str(r.role) for r in facts.open_tasks if r.state == "queued" and r.role)
    served = [role for role in settings.roles if role in facts.served_roles]
    if served:
        yield Finding("workers", ",".join(served), "ok", "a running agent serves each")
    for role in settings.roles:
        if role in facts.served_roles:
            continue
        waiting = queued.get(role, 0)
        yield Finding(
            "workers",
            role,
            "problem" if waiting else "warn",
            "no running agent serves it"
            + (f"; {waiting} of its tasks are queued for one" if waiting else ""),
            f"start an agent for it (MAESTRO_ROLES={role} python -m services.agents, or maestro up)",
        )
