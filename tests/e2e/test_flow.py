"""What a user sees end to end: tasks per role succeed, duplicates are one task, bad requests are refused."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

from nats.aio.msg import Msg

from maestro import codec, topics
from maestro.client import Client
from maestro.settings import Settings
from proto.v1 import ROLES, ContextFile, DeadLetter, Heartbeat, Rejected, TaskRequest
from tests.e2e.conftest import open_mesh

LEAKED_KEY = "AKIA" + "Z7QW3RT5YU2IOP4L"


def kinds(events: list[object]) -> list[str]:
    return [type(e).__struct_config__.tag for e in events if not isinstance(e, Heartbeat)]  # type: ignore[attr-defined]


def request_for(role: str, **extra: object) -> TaskRequest:
    fields: dict[str, object] = {"tenant": "acme", "role": role, "prompt": f"do the {role} work"}
    if role == "tester":
        fields["commands"] = ["true"]
    if role in ("reviewer", "doc-writer", "tester"):
        fields["context"] = [ContextFile(path="wc.py", content="def count(t):\n    return len(t.split())\n")]
    fields.update(extra)
    return TaskRequest(**fields)  # type: ignore[arg-type]


async def test_a_task_per_role_succeeds_with_its_events_in_order(mesh: Client) -> None:
    requests = [request_for(role) for role in ROLES]
    for request in requests:
        await mesh.submit(request)
    records = await asyncio.gather(*(mesh.wait(r.id, timeout=30) for r in requests))
    for request, record in zip(requests, records, strict=True):
        assert record.state == "succeeded", (request.role, record)
        assert record.role == request.role
        assert record.output
        assert record.cost_micro_usd > 0
        events = await mesh.events(request.id)
        assert kinds(events) == ["task.accepted", "task.queued", "task.started", "task.succeeded"]
    ledger = await mesh.ledger("acme")
    assert ledger.held_micro_usd == 0
    assert ledger.spent_micro_usd == sum(r.cost_micro_usd for r in records)


async def test_the_same_request_id_twice_is_one_task_with_one_set_of_events(mesh: Client) -> None:
    request = request_for("planner", id="same-id-twice")
    await mesh.submit(request)
    await mesh.submit(request)
    record = await mesh.wait(request.id, timeout=30)
    await mesh.submit(request)  # after it finished, too
    assert record.state == "succeeded"
    await asyncio.sleep(0.3)  # a duplicate would have produced events by now
    events = await mesh.events(request.id)
    assert kinds(events) == ["task.accepted", "task.queued", "task.started", "task.succeeded"]
    ledger = await mesh.ledger("acme")
    assert ledger.spent_micro_usd == record.cost_micro_usd


async def test_a_request_carrying_a_credential_is_rejected_and_never_reaches_an_agent(mesh: Client) -> None:
    seen_tasks: list[bytes] = []

    async def record_task(msg: Msg) -> None:
        seen_tasks.append(msg.data)

    subs = [await mesh.bus.nc.subscribe(t.all, cb=record_task) for t in (topics.WAITING, topics.TASKS)]
    request = request_for("implementer", prompt=f"deploy with {LEAKED_KEY}")
    await mesh.submit(request)
    record = await mesh.wait(request.id, timeout=30)
    for sub in subs:
        await sub.unsubscribe()
    assert record.state == "rejected"
    events = await mesh.events(request.id)
    rejected = [e for e in events if isinstance(e, Rejected)]
    assert len(rejected) == 1
    assert any(v.rule_id.startswith("credentials.") for v in rejected[0].decision.violations)
    assert not seen_tasks
    for stream in (topics.STREAM_WAITING, topics.STREAM_TASKS):
        assert (await mesh.bus.js.stream_info(stream)).state.last_seq == 0
    for event in events:
        assert LEAKED_KEY not in codec.encode(event).decode()


async def test_a_budget_that_cannot_cover_the_estimate_rejects_the_task(settings: Settings) -> None:
    async with AsyncExitStack() as stack:
        client = await open_mesh(settings.with_(default_limit_micro_usd=10), stack)
        request = request_for("planner", tenant="poor")
        await client.submit(request)
        record = await client.wait(request.id, timeout=30)
        assert record.state == "rejected"
        events = await client.events(request.id)
        rejected = next(e for e in events if isinstance(e, Rejected))
        assert [v.rule_id for v in rejected.decision.violations] == ["budget.insufficient"]
        ledger = await client.ledger("poor")
        assert ledger.held_micro_usd == 0 and ledger.spent_micro_usd == 0


async def test_random_bytes_land_in_the_dlq_and_the_guard_keeps_serving(mesh: Client) -> None:
    await mesh.bus.nc.publish(topics.REQUESTS.subject("acme"), b"\x8f\x00 definitely not a request")
    request = request_for("planner")
    await mesh.submit(request)
    record = await mesh.wait(request.id, timeout=30)
    assert record.state == "succeeded"
    sub = await mesh.bus.js.pull_subscribe(topics.DLQ.all, stream=topics.STREAM_DLQ)
    try:
        msgs = await sub.fetch(1, timeout=5)
    finally:
        await sub.unsubscribe()
    letter = codec.decode(DeadLetter, msgs[0].data)
    assert letter.origin == "guard"
    assert letter.subject == topics.REQUESTS.subject("acme")
    assert letter.data == b"\x8f\x00 definitely not a request"
    assert letter.reason.startswith("undecodable")
