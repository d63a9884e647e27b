"""The doctor's checks of the work in flight: dead letters, tasks past their time-out, budget holds past their
ttl, and the services and agents that do the work. Pure: facts in, findings out."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import timedelta

from maestro import topics
from maestro.doctor.facts import READ_HOLDS, READ_SERVICES, READ_TASKS, READ_WORKERS, Facts
from maestro.doctor.findings import Finding, ago, one_line
from maestro.overdue import is_overdue, time_out_at
from maestro.settings import Settings

RECENT_DLQ_S = 3600.0
"""Dead letters newer than this make the DLQ a problem (it is growing); older ones only a warning."""
NEWEST_REASONS = 3
"""Dead letters whose reasons a DLQ finding quotes."""
MICRO_SERVICES = (topics.BUDGET_SERVICE, topics.ORCHESTRATOR_SERVICE, topics.DISPATCHER_SERVICE)
"""The services that answer requests as nats micro services, so `$SRV.STATS` finds them."""
ONE_AT_A_TIME = frozenset({topics.DISPATCHER_SERVICE})
"""Services that one instance at most runs: the leading orchestrator replica's dispatcher."""


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
    reasons = "; ".join(f"#{x.seq} {x.origin}: {one_line(x.reason)}" for x in newest)
    when = f", the newest {ago(facts.read_at, newest[0].at)} ago" if newest else ""
    yield Finding(
        "dlq",
        topics.STREAM_DLQ,
        "problem" if recent else "warn",
        f"{depth} dead letter{'s' if depth != 1 else ''}{when}" + (f": {reasons}" if reasons else ""),
        "read them (maestro dlq ls, maestro dlq show SEQ), mend the cause, then maestro dlq replay",
    )


def stuck_tasks(facts: Facts) -> Iterator[Finding]:
    """Tasks still queued or running well past their time-out: the orchestrator's timers are not firing."""
    if facts.could_not_read(READ_TASKS):
        return
    stuck = []
    for record in facts.open_tasks:
        due = time_out_at(record)
        if due is not None and is_overdue(due, facts.read_at):
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
            f"{record.state} {ago(facts.read_at, due)} past its time-out ({record.tenant}, "
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
        f"{len(overdue)} holds (${money:.6f}) past their ttl, the oldest by {ago(facts.read_at, oldest)}: "
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
            yield _missing(name)
            continue
        if name in ONE_AT_A_TIME and len(instances) > 1:
            yield Finding(
                "service",
                name,
                "problem",
                f"{len(instances)} orchestrator replicas lead at once (one should): tenant limits loosen",
                "a replica that stalled longer than MAESTRO_LEADER_LEASE_S leads until its next renewal "
                "fails, within a third of a lease: if this lasts, restart the orchestrator replicas one at a "
                "time (each gives the lead up as it stops)",
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


def _missing(name: str) -> Finding:
    if name == topics.DISPATCHER_SERVICE:
        return Finding(
            "service",
            name,
            "problem",
            "no orchestrator replica leads: nothing dispatches",
            "a replica takes the lead within MAESTRO_LEADER_LEASE_S of the last leader's end: if none runs, "
            "start the orchestrator (maestro up starts every service; python -m services.orchestrator one)",
        )
    return Finding(
        "service",
        name,
        "problem",
        "no instance answers $SRV.STATS",
        f"start the {name} (maestro up starts every service; python -m services.{name} one)",
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
