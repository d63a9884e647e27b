"""The deploy gate over NATS: gather a commit's tester tasks and their guard decisions, judge them
(maestro/gates.py), wait while the answer may still change, and record every decision for an audit.

The SDK, the CLI and the orchestrator's GET /v1/gates/deploy all answer through `decide`, so they give the
same answer and record it the same way; only who asked (`by`) and how (`via`) differ.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Iterable
from datetime import UTC, datetime

from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from maestro import codec, gates, history, listing, topics
from maestro.bus import Bus
from maestro.scan import scan
from proto.v1 import AwaitingApproval, Decision, Queued, Rejected, TaskRecord
from proto.v1.gates import GateAnswer, GateAsker, GateDecided

_REMOVED = ("KV-Operation", "Nats-Marker-Reason")
"""Headers of a record's deletion or purge in the tasks bucket."""


def new_decision_id() -> str:
    """A fresh decision id: time-ordered (ms, hex) then 64 random bits, as a task id."""
    return f"g{time.time_ns() // 1_000_000:011x}{secrets.token_hex(8)}"


async def tests_of(js: JetStreamContext, ask: gates.Ask) -> list[TaskRecord]:
    """The newest tester tasks (at most listing.MAX_LIMIT) of `ask`'s tenant labelled with its repo and
    commit, in one pass over the tasks bucket; raises listing.TooMany for a bucket too large to read."""
    query = listing.query(
        listing.TASKS, tenant=ask.tenant, role=gates.ROLE, labels=ask.labels, limit=listing.MAX_LIMIT
    )
    page = await scan(js, topics.BUCKET_TASKS, query, TaskRecord, lambda r: r.role)
    return page.items


async def decision_of(js: JetStreamContext, task_id: str, tenant: str) -> Decision | None:
    """The guard's last decision on a task of `tenant`, from its events (None when none is stored)."""
    found = None
    for event in await history.read_events(js, task_id):
        if event.tenant == tenant and isinstance(event, Queued | Rejected | AwaitingApproval):
            found = event.decision
    return found


class Evidence:
    """A commit's tester tasks by id and the guard decisions read for them so far."""

    def __init__(self, ask: gates.Ask) -> None:
        self.ask = ask
        self.records: dict[str, TaskRecord] = {}
        self.decisions: dict[str, Decision] = {}

    def offer(self, record: TaskRecord) -> bool:
        """Keep `record` when it proves the ask (a newer version replaces the one kept); whether it did."""
        if not gates.proves(record, self.ask):
            return False
        self.records[record.id] = record
        return True

    async def judge(self, js: JetStreamContext, now: datetime) -> GateAnswer:
        """The answer at `now`, reading the decisions it needs: those of the successes within the max age,
        newest first, up to the first on record (the one that proves the commit), and the newest task's."""
        records = list(self.records.values())
        wanted = gates.successes(records, self.ask, now)
        if records:
            wanted.append(max(records, key=lambda r: (r.created_at, r.id)))
        for record in wanted:
            if record.id not in self.decisions:
                decision = await decision_of(js, record.id, self.ask.tenant)
                if decision is not None:
                    self.decisions[record.id] = decision
            if record.state == "succeeded" and gates.on_record(self.decisions.get(record.id)):
                break
        return gates.judge(records, self.decisions, self.ask, now)


async def answer(js: JetStreamContext, ask: gates.Ask) -> GateAnswer:
    """The gate's answer now, unrecorded; raises listing.TooMany for a tasks bucket too large to read."""
    evidence = Evidence(ask)
    for record in await tests_of(js, ask):
        evidence.offer(record)
    return await evidence.judge(js, datetime.now(UTC))


async def waited(js: JetStreamContext, ask: gates.Ask, timeout_s: float) -> GateAnswer:
    """The gate's answer once it is no longer one that may change by itself (gates.WAITED: no task yet, or
    still running), or the last one when `timeout_s` runs out.

    Follows the tasks bucket's changes as they are stored (an ordered push consumer, started before the
    first read, so nothing written between the two is missed) and judges again on each change of a task of
    this commit; no polling. Records are labelled, not keyed by commit, so every change of the bucket comes
    by: a change is matched on its bytes (the SHA) before it is decoded.
    """
    deadline = time.monotonic() + timeout_s
    sub = await js.subscribe(
        f"$KV.{topics.BUCKET_TASKS}.>",
        stream=topics.kv_stream(topics.BUCKET_TASKS),
        ordered_consumer=True,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.NEW, inactive_threshold=30.0),
    )
    try:
        evidence = Evidence(ask)
        for record in await tests_of(js, ask):
            evidence.offer(record)
        current = await evidence.judge(js, datetime.now(UTC))
        needle = ask.commit.encode()
        while current.outcome in gates.WAITED and (left := deadline - time.monotonic()) > 0:
            try:
                msg = await sub.next_msg(timeout=left)
            except NatsTimeout:
                break
            if needle not in msg.data or (msg.headers and any(h in msg.headers for h in _REMOVED)):
                continue
            with contextlib.suppress(codec.DecodeError):
                if evidence.offer(codec.decode(TaskRecord, msg.data)):
                    current = await evidence.judge(js, datetime.now(UTC))
        return current
    finally:
        with contextlib.suppress(NatsError):
            await sub.unsubscribe()


async def record(bus: Bus, answer: GateAnswer, *, by: str, via: GateAsker) -> GateDecided:
    """Store a decision on the tenant's gate subject; returns it as stored."""
    decided = GateDecided(id=new_decision_id(), at=datetime.now(UTC), by=by, via=via, answer=answer)
    await bus.streams.publish(topics.GATE_DECISIONS.at(answer.tenant), decided, msg_id=decided.id)
    return decided


async def decide(
    bus: Bus, ask: gates.Ask, *, by: str, via: GateAsker, wait_s: float | None = None
) -> GateDecided:
    """Answer `ask` (with `wait_s`: waited() that long at most) and record the answer as `by`'s decision."""
    if wait_s is None:
        found = await answer(bus.js, ask)
    else:
        found = await waited(bus.js, ask, wait_s)
    return await record(bus, found, by=by, via=via)


async def decisions(
    js: JetStreamContext, tenant: str, *, repo: str | None = None, commit: str | None = None, limit: int = 20
) -> list[GateDecided]:
    """The gate's decisions in `tenant`, newest first, at most `limit`, for `repo` and `commit` when given.

    Reads the tenant's subject from its start (an ephemeral consumer), keeping only the last `limit` that
    match: memory stays `limit` decisions however many the stream holds."""
    config = ConsumerConfig(
        ack_policy=AckPolicy.NONE,
        deliver_policy=DeliverPolicy.ALL,
        inactive_threshold=30.0,
        mem_storage=True,
    )
    sub = await js.pull_subscribe(
        topics.GATE_DECISIONS.subject(tenant), stream=topics.STREAM_GATE, config=config
    )
    kept: list[GateDecided] = []
    try:
        if (await sub.consumer_info()).num_pending == 0:
            return []
        while True:
            try:
                msgs = await sub.fetch(256, timeout=1.0)
            except TimeoutError:
                break
            kept = _newest(kept, _decoded(msgs), repo, commit, limit)
            if msgs[-1].metadata.num_pending == 0:
                break
    finally:
        with contextlib.suppress(NatsError):
            await sub.unsubscribe()
    return list(reversed(kept))


def _decoded(msgs: Iterable[object]) -> list[GateDecided]:
    found: list[GateDecided] = []
    for msg in msgs:
        with contextlib.suppress(codec.DecodeError):
            found.append(codec.decode(GateDecided, msg.data))  # type: ignore[attr-defined]
    return found


def _newest(
    kept: list[GateDecided], more: list[GateDecided], repo: str | None, commit: str | None, limit: int
) -> list[GateDecided]:
    """The last `limit` of `kept` then `more` about `repo` and `commit` (when given), oldest first."""
    matching = [
        d
        for d in more
        if (repo is None or d.answer.repo == repo) and (commit is None or d.answer.commit == commit)
    ]
    return (kept + matching)[-limit:]
