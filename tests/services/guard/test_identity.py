"""One id is one task, forever and across tenants (docs/ARCHITECTURE.md): the guard on a real nats-server."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from msgspec import structs
from nats.aio.msg import Msg

from maestro import claims, codec, topics, topology
from maestro.bus import Bus
from maestro.client import publish_request
from maestro.history import read_events
from maestro.settings import Settings
from proto.v1 import Accepted, DeadLetter, Decision, Queued, Rejected, TaskClaim, TaskRequest
from tests.services.guard.support import running_guard
from tests.services.guard.test_service import (
    AWS,
    events_until_verdict,
    guard_idle,
    handed_over,
    read_stream,
    request,
    submit,
    tasks_stored,
)


async def dead_letters(bus: Bus, count: int) -> list[DeadLetter]:
    return [
        codec.decode(DeadLetter, d) for d in await read_stream(bus, topics.STREAM_DLQ, topics.DLQ.all, count)
    ]


SAYS_CLAIMED = pytest.mark.parametrize(
    "says_claimed", [False, True], ids=["plain", "saying-its-sender-claimed-it"]
)
"""A request that says its sender claimed the id (topics.HEADER_CLAIMED) is checked the same way."""


async def send(bus: Bus, req: TaskRequest, *, says_claimed: bool, msg_id: str | None = None) -> None:
    """Publish a request on its tenant's subject; `says_claimed`: as a sender that claimed its id first (what
    the SDK, the API and workflows send)."""
    headers = {topics.HEADER_CLAIMED: "1"} if says_claimed else None
    await bus.streams.publish(topics.REQUESTS.at(req.tenant), req, msg_id=msg_id, headers=headers)


@SAYS_CLAIMED
async def test_the_same_id_from_another_tenant_is_refused_and_never_touches_the_first_task(
    bus: Bus, settings: Settings, says_claimed: bool
) -> None:
    first = request("shared-1")
    other = TaskRequest(id="shared-1", tenant="globex", role="tester", prompt="run", commands=["true"])
    async with running_guard(settings):
        await submit(bus, first)
        await events_until_verdict(bus, first.id)
        await send(bus, other, says_claimed=says_claimed)
        (letter,) = await dead_letters(bus, 1)
        await guard_idle(bus)
    assert letter.reason == "rejected: task id shared-1 belongs to another tenant's task"
    assert letter.subject == topics.REQUESTS.subject("globex")
    assert [type(e) for e in await read_events(bus.js, first.id)] == [Accepted, Queued]
    assert all(e.tenant == "acme" for e in await read_events(bus.js, first.id))
    assert await tasks_stored(bus) == 1


@SAYS_CLAIMED
async def test_the_same_id_with_other_content_is_refused(
    bus: Bus, settings: Settings, says_claimed: bool
) -> None:
    async with running_guard(settings):
        await submit(bus, request("same-id", prompt="first"))
        await events_until_verdict(bus, "same-id")
        await send(bus, request("same-id", prompt="second"), says_claimed=says_claimed)
        (letter,) = await dead_letters(bus, 1)
        await guard_idle(bus)
    assert letter.reason == "rejected: task id same-id was already used for a request with other content"
    assert await tasks_stored(bus) == 1


async def test_a_request_seen_again_after_every_duplicate_window_is_not_queued_again(
    bus: Bus, settings: Settings
) -> None:
    short = settings.with_(duplicate_window_s=0.2)
    await topology.ensure(bus.js, short)
    req = request("late-again")
    async with running_guard(short):
        await submit(bus, req)
        await events_until_verdict(bus, req.id)
        await guard_idle(bus)
        await asyncio.sleep(0.4)  # time itself is what must pass: the streams forget the dedup id
        await submit(bus, req)
        await guard_idle(bus)
    # Judged once, reserved once, recorded once. (The task, not yet started, is handed to its role again:
    # the guard cannot tell whether it was stored, and the agents run a task once however often it comes.)
    assert [type(e) for e in await read_events(bus.js, req.id)] == [Accepted, Queued]


async def test_a_task_left_queued_by_a_crash_is_handed_to_its_role_when_its_request_comes_back(
    bus: Bus, settings: Settings
) -> None:
    # The guard recorded Queued and died before it stored the assignment; the request is redelivered.
    req = request("half-done")
    await claims.claim_request(bus, req)
    subject = topics.EVENTS.at(req.tenant, req.id)
    now = datetime.now(UTC)
    await bus.streams.publish(subject, Accepted(task_id=req.id, tenant=req.tenant, at=now, role=req.role))
    queued = Queued(
        task_id=req.id,
        tenant=req.tenant,
        at=now,
        role=req.role,
        decision=Decision(verdict="allow"),
        reservation_id="r-half-done",
    )
    await bus.streams.publish(subject, queued)
    async with running_guard(settings):
        await submit(bus, req)
        await guard_idle(bus)
    assert await tasks_stored(bus) == 1
    assignment = await handed_over(bus, req)
    assert (assignment.request.id, assignment.reservation_id) == (req.id, "r-half-done")
    assert len(await read_events(bus.js, req.id)) == 2  # nothing recorded twice


async def test_a_body_naming_another_tenant_than_its_subject_is_refused_for_its_sender_only(
    bus: Bus, settings: Settings
) -> None:
    async with running_guard(settings):
        await bus.streams.publish(
            topics.REQUESTS.at("acme"), structs.replace(request("smuggled"), tenant="globex")
        )
        (letter,) = await dead_letters(bus, 1)
        (rejected,) = await events_until_verdict(bus, "smuggled")
        await guard_idle(bus)
    assert letter.reason == "rejected: a request of tenant 'globex' was published on maestro.v1.req.acme"
    # The sender (the subject's tenant) reads why; globex's subjects never see it.
    assert isinstance(rejected, Rejected) and rejected.tenant == "acme"
    assert rejected.reason.startswith("invalid request: rejected: a request of tenant 'globex'")
    assert rejected.decision.violations[0].rule_id == "input.wrong-tenant"
    globex = await bus.js.stream_info(topics.STREAM_EVENTS, subjects_filter=topics.EVENTS.filter("globex"))
    assert not globex.state.subjects
    assert await tasks_stored(bus) == 0


async def test_a_body_naming_another_tenant_cannot_touch_that_tenant_s_task(
    bus: Bus, settings: Settings
) -> None:
    theirs = structs.replace(request("theirs-1"), tenant="globex")
    async with running_guard(settings):
        await submit(bus, theirs)
        await events_until_verdict(bus, theirs.id)
        await bus.streams.publish(topics.REQUESTS.at("acme"), theirs)  # acme replays globex's request
        await dead_letters(bus, 1)
        await guard_idle(bus)
    assert [(type(e), e.tenant) for e in await read_events(bus.js, theirs.id)] == [
        (Accepted, "globex"),
        (Queued, "globex"),
    ]


async def test_a_dead_lettered_request_keeps_no_credential(bus: Bus, settings: Settings) -> None:
    body = (
        b'{"id": "leaky-1", "tenant": "acme", "role": "planner", "prompt": "deploy with key '
        + AWS.encode()
        + b'", "commands": 5}'
    )
    async with running_guard(settings):
        await bus.nc.publish(topics.REQUESTS.subject("acme"), body)
        (letter,) = await dead_letters(bus, 1)
        await events_until_verdict(bus, "leaky-1")
    assert AWS.encode() not in letter.data and AWS not in letter.reason
    assert b"[REDACTED:" in letter.data and b'"commands": 5' in letter.data


async def test_a_misspelt_field_on_the_request_subject_is_refused_with_a_readable_reason(
    bus: Bus, settings: Settings
) -> None:
    body = b'{"id": "typo-1", "tenant": "acme", "role": "tester", "prompt": "run", "comands": ["pytest"]}'
    async with running_guard(settings):
        await bus.nc.publish(topics.REQUESTS.subject("acme"), body)
        (letter,) = await dead_letters(bus, 1)
        (rejected,) = await events_until_verdict(bus, "typo-1")
    assert letter.reason == "undecodable: Object contains unknown field `comands`"
    assert isinstance(rejected, Rejected)
    assert rejected.reason == "invalid request: undecodable: Object contains unknown field `comands`"
    assert await tasks_stored(bus) == 0


async def test_a_request_its_sender_claimed_is_judged_once_and_queued_once_however_often_it_comes(
    bus: Bus, settings: Settings
) -> None:
    req = request("sdk-1")
    writes: list[str] = []

    async def attempted(msg: Msg) -> None:
        writes.append(msg.subject)

    # Every write tried on the claim, stored or refused, as core NATS delivers it.
    spy = await bus.nc.subscribe(topics.kv_subject(topics.BUCKET_CLAIMS, req.id), cb=attempted)
    async with running_guard(settings):
        await publish_request(bus, req, None)  # the SDK's path: claim, then publish with the header
        await events_until_verdict(bus, req.id)
        await guard_idle(bus)
        await bus.nc.flush()
        assert len(writes) == 1  # the SDK's; the guard read the claim instead of trying to make it again
        await send(bus, req, says_claimed=True)  # resent past the SDK's dedup id
        await bus.streams.publish(topics.REQUESTS.at("acme"), req, msg_id="sdk-1-again")
        await guard_idle(bus)
    await spy.unsubscribe()
    assert [type(e) for e in await read_events(bus.js, req.id)] == [Accepted, Queued]
    assert await claims.owner_of(bus, req.id) == TaskClaim(tenant="acme", digest=claims.digest(req))


async def test_a_request_that_says_it_was_claimed_when_nobody_did_is_claimed_by_the_guard(
    bus: Bus, settings: Settings
) -> None:
    req = request("said-claimed")
    async with running_guard(settings):
        await send(bus, req, says_claimed=True)
        assert [type(e) for e in await events_until_verdict(bus, req.id)] == [Accepted, Queued]
        await guard_idle(bus)
    assert await claims.owner_of(bus, req.id) == TaskClaim(tenant="acme", digest=claims.digest(req))
    assert await tasks_stored(bus) == 1
