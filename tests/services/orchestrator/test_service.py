"""The orchestrator in-process on a real nats-server: events published to MAESTRO_EVT fold into KV records."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from nats.aio.msg import Msg
from nats.js.errors import NoKeysError
from nats.js.kv import KeyValue

from maestro import codec, history, topics
from maestro.bus import Bus
from maestro.lifecycle import fold
from maestro.settings import Settings
from proto.v1 import (
    Accepted,
    Decision,
    Rejected,
    Started,
    Succeeded,
    TaskRecord,
    Usage,
    Violation,
)
from tests.services.orchestrator.support import (
    emit,
    lifecycle,
    metric,
    now,
    orchestrator,
    wait_handled,
    wait_record,
)


async def test_a_task_s_events_bring_its_record_to_succeeded(bus: Bus, records: KeyValue, port: int) -> None:
    for event in lifecycle("task-ok"):
        await emit(bus, event)
    done = await wait_record(records, "task-ok", lambda r: r.state == "succeeded")
    assert (done.tenant, done.role, done.labels, done.model) == ("acme", "tester", {"pr": "7"}, "m")
    assert (done.verdict, done.worker, done.attempts, done.output) == ("allow", "w-1", 1, "exit 0")
    assert done.usage == Usage(model="m", input_tokens=3, output_tokens=4)
    assert done.cost_micro_usd == 69
    assert done.started_at is not None and done.finished_at is not None
    assert await metric(port, "maestro_tasks_state_total", 'state="succeeded",tenant="acme"') == 1
    assert await metric(port, "maestro_orchestrator_transitions_total", 'result="applied"') == 5
    # Timed once, from its submission to its end, by its role and the state it ended in.
    assert await metric(port, "maestro_task_seconds_count", 'role="tester",state="succeeded"') == 1
    took = (done.finished_at - done.created_at).total_seconds()
    assert await metric(port, "maestro_task_seconds_sum", 'role="tester",state="succeeded"') == took


async def test_an_illegal_event_leaves_the_record_unchanged(bus: Bus, records: KeyValue, port: int) -> None:
    deny = Decision(verdict="deny", violations=[Violation(policy="secrets", rule_id="secrets.github-token")])
    await emit(bus, Accepted(task_id="task-bad", tenant="acme", at=now(), role="planner"))
    await emit(bus, Rejected(task_id="task-bad", tenant="acme", at=now(), decision=deny, reason="leak"))
    rejected = await wait_record(records, "task-bad", lambda r: r.state == "rejected")
    seq = await emit(bus, Succeeded(task_id="task-bad", tenant="acme", at=now(), worker="w", output="x"))
    await wait_handled(bus, seq)
    after = codec.decode(TaskRecord, (await records.get("task-bad")).value or b"")
    assert after == rejected
    assert after.violations == ["secrets.github-token"]
    assert await metric(port, "maestro_orchestrator_transitions_total", 'result="refused"') == 1


async def test_two_interleaved_tasks_both_end_right(bus: Bus, records: KeyValue, port: int) -> None:
    first, second = lifecycle("task-a"), lifecycle("task-b")
    for a, b in zip(first, second, strict=True):
        await emit(bus, a)
        await emit(bus, b)
    for task_id in ("task-a", "task-b"):
        done = await wait_record(records, task_id, lambda r: r.state == "succeeded")
        assert done.output == "exit 0" and done.attempts == 1


async def test_many_tasks_at_once_each_apply_in_order(bus: Bus, records: KeyValue, port: int) -> None:
    # Handlers run concurrently; per-task serialization keeps each task's events in stream order.
    ids = [f"task-{n}" for n in range(40)]
    acks = [
        bus.js.publish(topics.EVENTS.subject("acme", e.task_id), codec.encode(e))
        for stage in zip(*(lifecycle(i) for i in ids), strict=True)
        for e in stage
    ]
    await asyncio.gather(*acks)
    for task_id in ids:
        await wait_record(records, task_id, lambda r: r.state == "succeeded")
    assert await metric(port, "maestro_orchestrator_transitions_total", 'result="refused"') == 0


async def test_a_redelivered_event_is_a_duplicate_and_redelivered_work_restarts(
    bus: Bus, records: KeyValue, port: int
) -> None:
    events = lifecycle("task-r")
    for event in events[:3]:
        await emit(bus, event)
    # The same Started stored again (past the dedup window): refused, the task keeps its attempt.
    seq = await emit(bus, events[2])
    await wait_handled(bus, seq)
    await emit(bus, Started(task_id="task-r", tenant="acme", at=now(), worker="w-2", attempt=2))
    running = await wait_record(records, "task-r", lambda r: r.attempts == 2)
    assert (running.state, running.worker) == ("running", "w-2")
    await emit(bus, events[4])
    done = await wait_record(records, "task-r", lambda r: r.state == "succeeded")
    assert done.attempts == 2


async def test_events_overtaking_one_held_by_a_dead_replica_still_bring_the_record_to_its_end(
    bus: Bus, settings: Settings
) -> None:
    # A replica pulled Accepted and died without acking it: the server hands it out again only after the
    # ack wait (here a minute). The events stored after it must not wait for it, and none may be dropped.
    slow = settings.with_(ack_wait_s=60.0)
    events = lifecycle("task-held")
    async with orchestrator(slow):
        await wait_handled(bus, 0)  # its shared durable consumer exists
    dead_replica = await bus.js.pull_subscribe_bind(topics.DURABLE_ORCHESTRATOR, stream=topics.STREAM_EVENTS)
    await emit(bus, events[0])
    held = await dead_replica.fetch(1, timeout=5)
    assert codec.decode(Accepted, held[0].data).task_id == "task-held"  # and never acked
    for event in events[1:]:
        await emit(bus, event)
    records = await bus.js.key_value(topics.BUCKET_TASKS)
    async with orchestrator(slow):
        done = await wait_record(records, "task-held", lambda r: r.state == "succeeded", within=10)
    assert (done.role, done.labels, done.output, done.cost_micro_usd) == ("tester", {"pr": "7"}, "exit 0", 69)


async def test_a_request_rejected_before_it_was_accepted_has_a_record_saying_why(
    bus: Bus, records: KeyValue, port: int
) -> None:
    decision = Decision(verdict="deny")
    rejected = Rejected(
        task_id="task-junk", tenant="acme", at=now(), decision=decision, reason="invalid request: bad role"
    )
    await emit(bus, rejected)
    done = await wait_record(records, "task-junk", lambda r: r.state == "rejected")
    assert (done.tenant, done.reason, done.verdict) == ("acme", "invalid request: bad role", "deny")


async def test_an_event_on_another_task_s_subject_goes_to_the_dlq(bus: Bus, port: int) -> None:
    event = lifecycle("task-x")[0]
    await bus.streams.publish(topics.EVENTS.at("acme", "task-y"), event)
    sub = await bus.js.pull_subscribe(topics.DLQ.all, stream=topics.STREAM_DLQ)
    msgs = await sub.fetch(1, timeout=10)
    assert "task-x" in msgs[0].data.decode() and "stored on" in msgs[0].data.decode()


async def test_two_replicas_sharing_the_consumer_get_every_task_right(
    bus: Bus, records: KeyValue, settings: Settings
) -> None:
    # Each replica gets some of every task's events: early events are retried, stale writes lose the CAS.
    async with orchestrator(settings), orchestrator(settings):
        ids = [f"task-{n}" for n in range(30)]
        for stage in zip(*(lifecycle(i) for i in ids), strict=True):
            await asyncio.gather(*(emit(bus, event) for event in stage))
        for task_id in ids:
            done = await wait_record(records, task_id, lambda r: r.state == "succeeded", within=20)
            assert done.output == "exit 0"


async def test_a_task_waiting_to_start_is_written_as_it_starts_not_also_as_queued(
    bus: Bus, records: KeyValue, settings: Settings
) -> None:
    """With a plain linger of 50 ms and a waiting linger longer than the test, a task accepted and queued
    (waiting for its agent's turn) is not written while it waits: it is written once it starts (50 ms after
    its Started), as running, and then as it ends. Under a backlog at the dispatcher that is one write less
    per task."""
    writes: list[bytes] = []

    async def written(msg: Msg) -> None:
        writes.append(msg.data)

    sub = await bus.nc.subscribe(topics.kv_subject(topics.BUCKET_TASKS, "task-waits"), cb=written)
    async with orchestrator(settings.with_(record_linger_s=0.05, record_waiting_linger_s=60.0)):
        accepted, queued, started, _, succeeded = lifecycle("task-waits")
        await emit(bus, accepted)
        await emit(bus, queued)
        # Another task, accepted after it and started at once, is written after the plain linger: by then
        # the waiting task would have been written too, were its linger the plain one.
        for event in lifecycle("task-runs")[:3]:
            await emit(bus, event)
        await wait_record(records, "task-runs", lambda r: r.state == "running")
        await emit(bus, started)
        await wait_record(records, "task-waits", lambda r: r.state == "running")
        await wait_handled(bus, await emit(bus, succeeded))
    await sub.unsubscribe()
    assert [codec.decode(TaskRecord, w).state for w in writes] == ["running", "succeeded"]


async def test_a_stopping_orchestrator_writes_its_lingering_records_at_once(
    bus: Bus, records: KeyValue, settings: Settings
) -> None:
    """Lingers longer than the test: stopping writes what lingers instead of waiting them out (or leaving
    the events for a redelivery an ack wait later)."""
    loop = asyncio.get_running_loop()
    async with orchestrator(settings.with_(record_linger_s=60.0, record_waiting_linger_s=60.0)):
        for event in lifecycle("task-held")[:3]:
            await emit(bus, event)
        await emit(bus, lifecycle("task-new")[0])
        # All four delivered to the orchestrator and held there, none written yet.
        await _held(bus, 4)
        assert not [key async for key in _keys(records)]
        stopping = loop.time()
    assert loop.time() - stopping < 5
    held = codec.decode(TaskRecord, (await records.get("task-held")).value or b"")
    new = codec.decode(TaskRecord, (await records.get("task-new")).value or b"")
    assert (held.state, new.state) == ("running", "pending")


async def _held(bus: Bus, count: int) -> None:
    """Wait until the orchestrator holds `count` events delivered and not acknowledged."""
    async with asyncio.timeout(10):
        while True:
            info = await bus.js.consumer_info(topics.STREAM_EVENTS, topics.DURABLE_ORCHESTRATOR)
            if info.num_ack_pending >= count:
                return
            await asyncio.sleep(0.02)


async def _keys(records: KeyValue) -> AsyncIterator[str]:
    with contextlib.suppress(NoKeysError):
        for key in await records.keys():
            yield key


async def test_a_task_that_ends_within_the_linger_is_written_once_its_events_answering_until_then(
    bus: Bus, settings: Settings
) -> None:
    """With a record linger longer than the test, Accepted, Queued, Started and a heartbeat wait in the
    orchestrator and reach the record together with Succeeded: one write for five events, nothing lost;
    until it is written, the stored events make the record a reader is answered with."""
    writes: list[bytes] = []

    async def written(msg: Msg) -> None:
        writes.append(msg.data)

    sub = await bus.nc.subscribe(topics.kv_subject(topics.BUCKET_TASKS, "task-folded"), cb=written)
    async with orchestrator(settings.with_(record_linger_s=60.0)):
        accepted, *middle, succeeded = lifecycle("task-folded")
        for event in (accepted, *middle):
            await emit(bus, event)
        so_far = fold(await history.read_stored(bus.js, "task-folded"))
        assert so_far is not None and (so_far.state, so_far.worker) == ("running", "w-1")
        await wait_handled(bus, await emit(bus, succeeded))
    await sub.unsubscribe()
    assert [codec.decode(TaskRecord, w).state for w in writes] == ["succeeded"]
    done = codec.decode(TaskRecord, writes[-1])
    assert (done.worker, done.attempts, done.output) == ("w-1", 1, "exit 0")
    assert done.started_at is not None
