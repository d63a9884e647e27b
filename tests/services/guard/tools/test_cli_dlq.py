"""`maestro dlq ls|show|replay` against a real mesh: poison a message, read it masked, replay it."""

from __future__ import annotations

import asyncio
import json
from contextlib import AsyncExitStack

from nats.aio.subscription import Subscription

from maestro import codec, topics
from maestro.bus import Bus
from maestro.client import open_client
from maestro.deliveries import Delivery
from maestro.runtime import running_service
from maestro.settings import Settings
from proto.v1 import DeadLetter, TaskAssignment, TaskRequest
from services.agents.service import SERVICE as AGENTS
from services.agents.service import consumer as agents_consumer
from services.budget.service import SERVICE as BUDGET
from services.guard.service import SERVICE as GUARD
from services.orchestrator.service import SERVICE as ORCHESTRATOR
from tests.maestro.command import maestro

AWS = "AKIA" + "Z7Q3RTX5KQWE8PLM"
POISON = json.dumps({"task": "not an assignment", "key": AWS}).encode()


async def _next_letter(sub: Subscription, *, other_than: int = 0) -> DeadLetter:
    """The next dead letter seen on the DLQ subjects, skipping copies of the message at `other_than`: a
    letter whose store timed out on a busy machine is published again, and a plain subscription sees both."""
    while True:
        msg = await sub.next_msg(timeout=20)
        letter = codec.decode(DeadLetter, msg.data)
        if letter.stream_seq != other_than:
            return letter


async def test_a_poisoned_message_is_listed_shown_masked_and_dead_letters_again_when_replayed(
    settings: Settings, bus: Bus
) -> None:
    url = settings.nats_url or ""

    async def never(assignment: TaskAssignment, delivery: Delivery) -> None:
        raise AssertionError("a poisoned message never reaches the handler")

    # The planner agents' own consumer, as their service consumes it (without the other roles' consumers).
    consuming = asyncio.create_task(bus.consumers.consume(agents_consumer("planner"), never))
    try:
        letters = await bus.nc.subscribe(topics.DLQ.all)
        await bus.js.publish(
            topics.TASKS.subject("planner", "acme"),
            POISON,
            headers={"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"},
        )
        first = await _next_letter(letters)
        assert first.origin == "agents" and first.reason.startswith("undecodable")

        listed = maestro("dlq", "ls", "--origin", "agents", nats_url=url)
        assert listed.returncode == 0, listed.stderr
        rows = listed.stdout.splitlines()
        assert len(rows) == 2 and rows[0].split()[0] == "SEQ"  # a header, then the one letter
        seq = rows[1].split()[0]
        assert (
            "agents" in rows[1]
            and topics.TASKS.subject("planner", "acme") in rows[1]
            and "undecodable" in rows[1]
        )
        assert maestro("dlq", "ls", "--origin", "guard", nats_url=url).stdout.splitlines()[1:] == []

        shown = maestro("dlq", "show", seq, nats_url=url)
        assert shown.returncode == 0, shown.stderr
        assert AWS not in shown.stdout and "[REDACTED:aws-access-key]" in shown.stdout
        assert "not an assignment" in shown.stdout and "traceparent" in shown.stdout
        as_json = maestro("dlq", "show", seq, "--json", nats_url=url)
        assert AWS not in as_json.stdout and json.loads(as_json.stdout)["reason"] == first.reason

        replayed = maestro("dlq", "replay", seq, nats_url=url)
        assert replayed.returncode == 0, replayed.stderr
        again = await _next_letter(letters, other_than=first.stream_seq)
        # Nothing was fixed: the same bytes fail the same way, headers kept but for a fresh message id.
        assert (again.reason, again.subject, again.data) == (first.reason, first.subject, POISON)
        assert again.headers["traceparent"] == first.headers["traceparent"]
        assert again.headers.get(topics.HEADER_MSG_ID) != first.headers.get(topics.HEADER_MSG_ID)

        # The replayed letter is gone: replaying it twice cannot publish it twice.
        twice = maestro("dlq", "replay", seq, nats_url=url)
        assert twice.returncode == 1 and twice.stderr.strip() == f"maestro: error: no dead letter {seq}"
        assert maestro("dlq", "show", seq, nats_url=url).returncode == 1
        rows = maestro("dlq", "ls", nats_url=url).stdout.splitlines()
        assert len(rows) == 2 and rows[1].split()[0] != seq
    finally:
        bus.lifetime.stop()
        await asyncio.wait_for(consuming, 10)


async def test_a_request_dead_lettered_while_the_budget_was_down_runs_when_replayed(
    settings: Settings, bus: Bus
) -> None:
    request = TaskRequest(id="replayed-1", tenant="acme", role="planner", prompt="Plan a small CLI")
    # As the bus keeps a request whose retries ran out while the budget did not answer (and whose task
    # could not be failed either): the original bytes, subject and headers.
    await bus.streams.dead_letter(
        "guard",
        topics.REQUESTS.subject("acme"),
        codec.encode(request),
        "still retrying after 3 deliveries: the budget did not answer",
        headers={topics.HEADER_MSG_ID: topics.request_msg_id(request.id, "f" * 16)},
        deliveries=3,
        msg_id="guard.1",
    )
    async with AsyncExitStack() as stack:
        for service in (BUDGET, ORCHESTRATOR, AGENTS, GUARD):
            await stack.enter_async_context(running_service(service, settings))
        client = await stack.enter_async_context(open_client(settings))
        replayed = maestro("dlq", "replay", "--all", "--origin", "guard", nats_url=settings.nats_url)
        assert replayed.returncode == 0, replayed.stderr
        assert "replayed 1" in replayed.stdout
        record = await client.wait(request.id, timeout=60)
        assert record.state == "succeeded", record
    assert maestro("dlq", "ls", nats_url=settings.nats_url).stdout.splitlines()[1:] == []


async def test_what_is_not_a_letter_is_listed_as_such_and_never_replayed(
    settings: Settings, bus: Bus
) -> None:
    await bus.js.publish(topics.DLQ.subject("stray"), b"\x1b[2J not json")
    listed = maestro("dlq", "ls", nats_url=settings.nats_url)
    (row,) = listed.stdout.splitlines()[1:]
    assert "not a dead letter" in row and "\x1b" not in listed.stdout
    seq = row.split()[0]
    replayed = maestro("dlq", "replay", seq, nats_url=settings.nats_url)
    assert replayed.returncode == 1
    assert replayed.stderr.splitlines() == [f"maestro: error: {seq} is not a dead letter: nothing to replay"]
    assert (await bus.js.stream_info(topics.STREAM_DLQ)).state.messages == 1
