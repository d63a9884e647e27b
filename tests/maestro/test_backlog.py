"""The backlog read: each durable's pending, in-progress and redelivered messages; missing ones; the DLQ."""

from __future__ import annotations

from datetime import UTC, datetime

import nats.errors
import pytest
from nats.js.api import AckPolicy, ConsumerConfig

from maestro import topics
from maestro.backlog import Durable, durables, read_backlog, waiting_durables
from maestro.bus import Bus
from proto.v1 import ROLES


async def test_reads_what_a_durable_has_pending_in_progress_and_redelivered(bus: Bus) -> None:
    before = datetime.now(UTC)
    for n in range(2):
        await bus.js.publish(topics.DLQ.subject("guard"), f"letter {n}".encode())
    pull = await bus.js.pull_subscribe(
        topics.REQUESTS.all,
        durable=topics.DURABLE_GUARD,
        stream=topics.STREAM_REQUESTS,
        config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=30.0, max_deliver=5),
    )
    await _request(bus, 3)
    first, *_ = await pull.fetch(3, timeout=2)
    await first.nak()
    (again,) = await pull.fetch(1, timeout=2)
    assert again.metadata.num_delivered == 2  # the same message, handed out a second time
    await _request(bus, 2)

    backlog = await read_backlog(bus.js)

    guard = backlog.consumer(topics.DURABLE_GUARD)
    assert guard is not None
    assert (guard.stream, guard.pending, guard.ack_pending, guard.redelivered) == (
        topics.STREAM_REQUESTS,
        2,
        3,
        1,
    )
    assert guard.last_active is not None and guard.last_active >= before.replace(microsecond=0)
    assert guard.filter_subjects == (topics.REQUESTS.all,)
    assert (guard.ack_wait_s, guard.max_deliver) == (30.0, 5)
    assert backlog.dlq_depth == 2
    # Nothing else runs here: every other durable is reported missing, none silently left out.
    assert set(backlog.missing) == {d for d in durables() if d.consumer != topics.DURABLE_GUARD}
    assert Durable(topics.STREAM_TASKS, "agents-tester") in backlog.missing


async def test_a_missing_stream_is_an_answer_not_an_error(bus: Bus) -> None:
    await bus.js.delete_stream(topics.STREAM_DLQ)
    await bus.js.delete_stream(topics.STREAM_HOOKS)
    hooks = Durable(topics.STREAM_HOOKS, topics.DURABLE_ORCHESTRATOR_REVIEWS)

    backlog = await read_backlog(bus.js, [hooks])

    assert (backlog.consumers, backlog.missing, backlog.dlq_depth) == ((), (hooks,), None)


def test_every_role_has_its_agents_durable_and_its_waiting_tasks_consumer() -> None:
    names = {d.consumer for d in durables(["tester", "reviewer"])}
    assert {"agents-tester", "agents-reviewer"} <= names
    assert "agents-planner" not in names
    assert {topics.DURABLE_GUARD, topics.DURABLE_ORCHESTRATOR, topics.DURABLE_GUARD_APPROVALS} <= names
    assert {(d.stream, d.consumer) for d in waiting_durables()} == {
        (topics.STREAM_WAITING, f"backlog-{role}") for role in ROLES
    }


async def _request(bus: Bus, count: int) -> None:
    for _ in range(count):
        await bus.js.publish(topics.REQUESTS.subject("acme"), b"{}")


async def test_a_server_that_does_not_answer_is_one_nats_error_not_a_group(bus: Bus) -> None:
    """The orchestrator's gauges and maestro doctor catch the JetStream API's errors around this read; the
    reads of the durables once came back as an ExceptionGroup, which they did not catch, and a busy server's
    time-outs ended the orchestrator's serving."""
    nobody = bus.nc.jetstream(prefix="$JS.NOBODY.API", timeout=0.5)
    with pytest.raises(nats.errors.Error) as raised:
        await read_backlog(nobody, durables())
    assert not isinstance(raised.value, BaseExceptionGroup)
