"""The guard against a real nats-server and the real budget service: verdicts, queueing, DLQ, dedup."""

from __future__ import annotations

import asyncio
import contextlib

import msgspec
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from maestro import codec, topics
from maestro.bus import Bus
from maestro.client import open_client
from maestro.errors import NotFound
from maestro.history import follow_events, read_events
from maestro.runtime import open_bus, running_service
from maestro.settings import Settings
from proto.v1 import (
    Accepted,
    ContextFile,
    DeadLetter,
    GetLedger,
    Queued,
    Rejected,
    TaskAssignment,
    TaskEvent,
    TaskRequest,
    Timeouts,
)
from services.budget.service import SERVICE as BUDGET
from services.guard.service import serve
from tests.services.agents.flow import budget_ready
from tests.services.guard.support import running_guard

AWS = "AKIA" + "Z7Q3RTX5KQWE8PLM"  # not the documented example key, which is allowlisted


def request(task_id: str, prompt: str = "Plan a CLI that counts words", **kwargs: object) -> TaskRequest:
    return TaskRequest(id=task_id, tenant="acme", role="planner", prompt=prompt, **kwargs)  # type: ignore[arg-type]


async def submit(bus: Bus, req: TaskRequest) -> None:
    await bus.streams.publish(topics.REQUESTS.at(req.tenant), req, msg_id=req.id)


async def events_until_verdict(bus: Bus, task_id: str, within: float = 10.0) -> list[TaskEvent]:
    """A task's events up to and including the guard's verdict."""
    seen: list[TaskEvent] = []
    async with asyncio.timeout(within):
        async for event in follow_events(bus.js, task_id):
            seen.append(event)
            if not isinstance(event, Accepted):
                return seen
    raise AssertionError("unreachable")


async def tasks_stored(bus: Bus) -> int:
    """How many tasks the guard handed over: to the dispatcher, with fair dispatch (the default)."""
    return (await bus.js.stream_info(topics.STREAM_WAITING)).state.messages


async def handed_over(bus: Bus, req: TaskRequest) -> TaskAssignment:
    """The last assignment the guard handed over for the request's role and tenant."""
    subject = topics.WAITING.subject(req.role, str(req.priority), req.tenant)
    stored = await bus.js.get_last_msg(topics.STREAM_WAITING, subject)
    return codec.decode(TaskAssignment, stored.data or b"")


async def read_stream(bus: Bus, stream: str, subjects: str, count: int, within: float = 5.0) -> list[bytes]:
    """The first `count` messages of a stream (raw bytes), without consuming them."""
    config = ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL, mem_storage=True)
    sub = await bus.js.pull_subscribe(subjects, stream=stream, config=config)
    data: list[bytes] = []
    try:
        async with asyncio.timeout(within):
            while len(data) < count:
                try:
                    msgs = await sub.fetch(count - len(data), timeout=0.5)
                except TimeoutError:
                    continue
                data.extend(m.data for m in msgs)
    finally:
        await sub.unsubscribe()
    return data


async def guard_idle(bus: Bus, within: float = 10.0) -> None:
    """Wait until the guard has settled every request it was given."""
    async with asyncio.timeout(within):
        while True:
            try:
                info = await bus.js.consumer_info(topics.STREAM_REQUESTS, topics.DURABLE_GUARD)
            except NotFoundError:  # the guard has not created its consumer yet
                await asyncio.sleep(0.02)
                continue
            if info.num_pending == 0 and info.num_ack_pending == 0:
                return
            await asyncio.sleep(0.05)


async def test_a_clean_request_is_accepted_queued_and_assigned_to_its_role(
    bus: Bus, settings: Settings
) -> None:
    req = request("clean-1", labels={"repo": "acme/app"}, commands=["make test"])
    async with running_guard(settings) as registry:
        await submit(bus, req)
        events = await events_until_verdict(bus, req.id)
    accepted, queued = events
    assert isinstance(accepted, Accepted)
    assert (accepted.role, accepted.labels, accepted.commands) == ("planner", {"repo": "acme/app"}, 1)
    assert accepted.prompt_chars == len(req.prompt)
    assert isinstance(queued, Queued)
    assert queued.decision.verdict == "allow" and queued.reservation_id
    assert queued.decision.estimate_micro_usd > 0

    assignment = await handed_over(bus, req)
    # The task handed over names the model it runs on: the default, as it named none.
    assert assignment.request == msgspec.structs.replace(req, model="offline")
    assert accepted.model == "offline"
    assert assignment.reservation_id == queued.reservation_id
    assert (
        registry.get_sample_value(
            "maestro_guard_decisions_total",
            {"verdict": "allow", "policy": "none", "rule": "none", "tenant": "acme"},
        )
        == 1
    )
    assert registry.get_sample_value("maestro_guard_eval_seconds_count") == 1


async def test_decisions_name_the_first_tenants_and_count_the_rest_as_other(
    bus: Bus, settings: Settings
) -> None:
    tenants = ("acme", "globex", "initech")
    async with running_guard(settings.with_(metrics_tenants=2)) as registry:
        for n, tenant in enumerate(tenants):
            req = msgspec.structs.replace(request(f"t-{n}"), tenant=tenant)
            await submit(bus, req)
            await events_until_verdict(bus, req.id)  # one at a time: the first two are the first seen
    allowed = {"verdict": "allow", "policy": "none", "rule": "none"}
    counted = {
        tenant: registry.get_sample_value("maestro_guard_decisions_total", {**allowed, "tenant": tenant})
        for tenant in ("acme", "globex", "initech", "other")
    }
    assert counted == {"acme": 1, "globex": 1, "initech": None, "other": 1}


async def test_accepted_carries_the_requests_timeouts_for_the_orchestrator(
    bus: Bus, settings: Settings
) -> None:
    timeouts = Timeouts(schedule_to_start_s=30.0, start_to_close_s=600.0)
    timed, untimed = request("timed-1", timeouts=timeouts), request("untimed-1")
    async with running_guard(settings):
        await submit(bus, timed)
        await submit(bus, untimed)
        (accepted, _) = await events_until_verdict(bus, timed.id)
        (plain, _) = await events_until_verdict(bus, untimed.id)
    assert isinstance(accepted, Accepted) and accepted.timeouts == timeouts
    assert isinstance(plain, Accepted) and plain.timeouts is None


async def test_a_request_carrying_a_credential_is_rejected_and_never_queued(
    bus: Bus, settings: Settings
) -> None:
    req = request(
        "leaky-1",
        prompt="Deploy the app",
        context=[ContextFile(path="deploy/.env", content=f"REGION=eu\nAWS_ACCESS_KEY_ID={AWS}\n")],
    )
    async with running_guard(settings) as registry:
        await submit(bus, req)
        events = await events_until_verdict(bus, req.id)
    rejected = events[-1]
    assert isinstance(rejected, Rejected)
    assert rejected.decision.verdict == "deny"
    (violation,) = rejected.decision.violations
    assert violation.rule_id == "credentials.aws-access-key"
    assert violation.location == "context:deploy/.env:2:19"
    assert "credentials.aws-access-key" in rejected.reason
    assert await tasks_stored(bus) == 0
    # The secret is in no event: not in the verdict's evidence, not in the Accepted metadata.
    stored = await read_stream(bus, topics.STREAM_EVENTS, topics.EVENTS.all, len(events))
    assert all(AWS.encode() not in data for data in stored)
    rule = {
        "verdict": "deny",
        "policy": "credentials",
        "rule": "credentials.aws-access-key",
        "tenant": "acme",
    }
    assert registry.get_sample_value("maestro_guard_decisions_total", rule) == 1


async def test_a_budget_too_small_for_the_estimate_rejects_the_request(bus: Bus, settings: Settings) -> None:
    async with running_guard(settings.with_(default_limit_micro_usd=1_000)):
        await submit(bus, request("poor-1"))
        events = await events_until_verdict(bus, "poor-1")
    rejected = events[-1]
    assert isinstance(rejected, Rejected)
    (violation,) = rejected.decision.violations
    assert violation.rule_id == "budget.insufficient"
    assert str(rejected.decision.estimate_micro_usd) in violation.message
    assert await tasks_stored(bus) == 0


async def test_random_bytes_go_to_the_dlq_and_the_guard_keeps_serving(bus: Bus, settings: Settings) -> None:
    async with running_guard(settings):
        await bus.nc.publish(topics.REQUESTS.subject("acme"), b"\x00\xff\x13 not a request")
        await submit(bus, request("after-garbage"))
        events = await events_until_verdict(bus, "after-garbage")
        (letter_bytes,) = await read_stream(bus, topics.STREAM_DLQ, topics.DLQ.all, 1)
    assert isinstance(events[-1], Queued)
    letter = codec.decode(DeadLetter, letter_bytes)
    assert letter.origin == "guard"
    assert letter.subject == topics.REQUESTS.subject("acme")
    assert letter.reason.startswith("undecodable:")
    assert letter.data == b"\x00\xff\x13 not a request"


async def test_an_invalid_request_with_an_id_and_tenant_fails_with_the_reason(
    bus: Bus, settings: Settings
) -> None:
    body = b'{"id": "bad-role-1", "tenant": "acme", "role": "wizard", "prompt": "cast a spell"}'
    async with running_guard(settings):
        await bus.nc.publish(topics.REQUESTS.subject("acme"), body)
        events = await events_until_verdict(bus, "bad-role-1")
    (rejected,) = events
    assert isinstance(rejected, Rejected)
    assert rejected.reason.startswith("invalid request: undecodable:")
    assert "role 'wizard' is neither an agent role" in rejected.reason  # the field, and what it may be
    assert rejected.decision.violations[0].rule_id == "input.undecodable"
    assert await tasks_stored(bus) == 0


async def test_a_request_nested_past_every_decoder_s_depth_still_fails_with_the_reason(
    bus: Bus, settings: Settings
) -> None:
    # Its id and tenant are read off the top level, so the sender learns why, like any invalid request.
    deep = b"[" * 5000 + b"]" * 5000
    body = b'{"id": "deep-1", "extra": ' + deep + b', "tenant": "acme", "role": "planner", "prompt": "p"}'
    async with running_guard(settings):
        await bus.nc.publish(topics.REQUESTS.subject("acme"), body)
        events = await events_until_verdict(bus, "deep-1")
    (rejected,) = events
    assert isinstance(rejected, Rejected)
    assert rejected.reason == "invalid request: undecodable: nested too deeply"
    assert rejected.decision.violations[0].rule_id == "input.undecodable"


async def test_an_invalid_request_without_a_valid_id_only_goes_to_the_dlq(
    bus: Bus, settings: Settings
) -> None:
    async with running_guard(settings):
        await bus.nc.publish(topics.REQUESTS.subject("acme"), b'{"id": "has.dots", "tenant": "acme"}')
        await submit(bus, request("next-1"))
        await events_until_verdict(bus, "next-1")
        await read_stream(bus, topics.STREAM_DLQ, topics.DLQ.all, 1)
        await guard_idle(bus)
    evt = await bus.js.stream_info(topics.STREAM_EVENTS)
    assert evt.state.messages == 1  # next-1 accepted and queued (one event), nothing for the bad one


async def test_resubmitting_a_request_yields_one_set_of_events_and_one_task(
    bus: Bus, settings: Settings
) -> None:
    req = request("twice-1")
    async with running_guard(settings):
        await submit(bus, req)
        await submit(bus, req)
        await events_until_verdict(bus, req.id)
        # Even when the same request reaches the guard again (no dedup id), nothing happens twice.
        await bus.streams.publish(topics.REQUESTS.at("acme"), req)
        await guard_idle(bus)
    events = await read_events(bus.js, req.id)
    assert [type(e) for e in events] == [Accepted, Queued]
    assert await tasks_stored(bus) == 1


async def test_a_request_that_fails_for_good_after_its_reservation_gives_the_hold_back(
    bus: Bus, settings: Settings
) -> None:
    # No stream answers for the assignment: NATS looks unavailable, which is waited out for max_retries.
    async with running_guard(settings.with_(max_deliver=2, max_retries=2)):
        await bus.js.delete_stream(topics.STREAM_WAITING)  # the assignment can never be stored
        await submit(bus, request("stranded"))
        (letter_bytes,) = await read_stream(bus, topics.STREAM_DLQ, topics.DLQ.all, 1, within=15)
        letter = codec.decode(DeadLetter, letter_bytes)
        assert letter.reason.startswith("NATS unavailable for 2 deliveries")
        # The hook runs just after the letter is stored: poll the ledger until the hold is back.
        async with asyncio.timeout(20):
            ask = GetLedger(tenant="acme")
            while (ledger := await bus.calls.request(topics.BUDGET_GET, ask)).held_micro_usd:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        # The hold is given back before the verdict is withdrawn: wait for the withdrawal too.
        async with asyncio.timeout(20):
            while len(events := await read_events(bus.js, "stranded")) < 3:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
    assert ledger.spent_micro_usd == 0
    # Queued was recorded before the assignment failed for good: the guard withdraws it with a rejection of
    # its own (never an outcome, the orchestrator's and the agents' kind of event).
    assert [type(e).__name__ for e in events] == ["Accepted", "Queued", "Rejected"]
    assert events[-1].reason.startswith("queued, then withdrawn: not handled")  # type: ignore[union-attr]


async def test_while_the_budget_cannot_answer_the_task_reads_as_pending_and_is_accepted_once(
    bus: Bus, settings: Settings
) -> None:
    req = request("waits-for-budget")
    async with open_bus(settings, "maestro-guard") as guard_bus, open_client(settings) as client:
        guarding = asyncio.create_task(serve(guard_bus))
        try:
            await submit(bus, req)  # no budget service yet: the guard cannot hold the estimate
            async with asyncio.timeout(10):
                while True:
                    with contextlib.suppress(NotFound):
                        if (await client.get(req.id)).state == "pending":
                            break
                    await asyncio.sleep(0.05)
            async with running_service(BUDGET, settings):
                await budget_ready(guard_bus)
                async with asyncio.timeout(20):
                    while (await client.get(req.id)).state == "pending":  # noqa: ASYNC110
                        await asyncio.sleep(0.05)
                assert (await client.get(req.id)).state == "queued"
        finally:
            guard_bus.lifetime.stop()
            await asyncio.wait_for(guarding, 10)
    # Its acceptance was stored on its own while it waited, so the verdict does not carry it again.
    assert [type(e) for e in await read_events(bus.js, req.id)] == [Accepted, Queued]
