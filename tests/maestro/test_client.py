"""The SDK's submit on a real nats-server: one id is one task, and a conflict is an error, never silence."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from maestro import codec, topics
from maestro.bus import Bus
from maestro.claims import IdConflict, digest, owner_of
from maestro.client import open_client
from maestro.errors import NotFound
from maestro.settings import Settings
from proto.v1 import Accepted, Decision, Queued, TaskRequest, Timeouts


def plan(task_id: str, tenant: str = "acme", prompt: str = "Plan a CLI") -> TaskRequest:
    return TaskRequest(id=task_id, tenant=tenant, role="planner", prompt=prompt)


async def test_a_conflicting_submission_inside_the_duplicate_window_raises(
    bus: Bus, settings: Settings
) -> None:
    async with open_client(settings) as client:
        assert await client.submit(plan("sdk-1")) == "sdk-1"
        assert await client.submit(plan("sdk-1")) == "sdk-1"  # the same request again: the same task
        with pytest.raises(IdConflict, match="belongs to another tenant's task"):
            await client.submit(plan("sdk-1", tenant="globex"))
        with pytest.raises(IdConflict, match="other content"):
            await client.submit(plan("sdk-1", prompt="Plan something else"))
    stored = await bus.js.stream_info(topics.STREAM_REQUESTS)
    assert stored.state.messages == 1


async def test_a_request_built_with_ints_for_floats_has_the_fingerprint_the_guard_computes(
    bus: Bus, settings: Settings
) -> None:
    # Found by the time-outs' end-to-end test: Timeouts(schedule_to_start_s=1) holds an int until it is
    # decoded, so the SDK claimed the id with another fingerprint than the guard's and the guard refused it.
    request = TaskRequest(
        id="sdk-int", tenant="acme", role="planner", prompt="p", timeouts=Timeouts(schedule_to_start_s=1)
    )
    async with open_client(settings) as client:
        await client.submit(request)
    (stored,) = await (await bus.js.pull_subscribe(topics.REQUESTS.all, stream=topics.STREAM_REQUESTS)).fetch(
        1
    )
    as_the_guard_reads_it = codec.decode(TaskRequest, stored.data)
    claim = await owner_of(bus, "sdk-int")
    assert claim is not None and claim.digest == digest(as_the_guard_reads_it)


async def test_a_task_whose_record_is_not_written_yet_is_what_its_stored_events_make(
    bus: Bus, settings: Settings
) -> None:
    # No orchestrator runs: nothing writes the record, as while the task's first events linger.
    accepted = Accepted(task_id="t-lag", tenant="acme", at=datetime.now(UTC), role="planner")
    queued = Queued(
        task_id="t-lag",
        tenant="acme",
        at=datetime.now(UTC),
        role="planner",
        decision=Decision(verdict="allow"),
    )
    async with open_client(settings) as client:
        with pytest.raises(NotFound):
            await client.get("t-lag")
        for event in (accepted, queued):
            await bus.streams.publish(topics.EVENTS.at("acme", "t-lag"), event)
        record = await client.get("t-lag")
    assert (record.id, record.tenant, record.state, record.role) == ("t-lag", "acme", "queued", "planner")
