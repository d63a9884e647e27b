"""Time-outs and cancel end to end, on a real nats-server: durable timers, released holds, the guard told."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from maestro import history
from maestro.cancel import AlreadyEnded
from maestro.client import Client, NotAwaitingApproval, open_client
from maestro.errors import NotFound
from maestro.settings import Settings
from proto.v1 import Cancelled, Queued, Started, TaskRecord, TaskRequest, TimedOut, Timeouts, TimerFired
from tests.e2e.conftest import in_state
from tests.e2e.test_approval_flow import PINNED, Mesh, awaiting, start
from tests.maestro.test_presence import eventually

# The agents serve every role but the doc-writer's, so a doc-writer task waits in its queue, its hold taken.
SERVED = ("planner", "scaffolder", "implementer", "tester", "reviewer")


@pytest.fixture
async def mesh(settings: Settings) -> AsyncIterator[Mesh]:
    async with AsyncExitStack() as stack:
        yield await start(settings.with_(roles=SERVED), stack)


async def held(client: Client, tenant: str = "acme") -> int:
    return (await client.ledger(tenant)).held_micro_usd


async def released(client: Client) -> bool:
    return await held(client) == 0


async def timer_came_due(client: Client, task_id: str) -> bool:
    return any(isinstance(e, TimerFired) for e in await client.events(task_id))


async def queued_task(client: Client, task_id: str, timeouts: Timeouts | None = None) -> TaskRecord:
    request = TaskRequest(
        id=task_id, tenant="acme", role="doc-writer", prompt="Document it", timeouts=timeouts
    )
    await client.submit(request)
    record = await in_state(client, task_id, "queued")
    assert record.reservation_id and await held(client) > 0
    return record


async def test_a_task_no_agent_starts_in_time_times_out_and_its_hold_is_released(mesh: Mesh) -> None:
    await queued_task(mesh.client, "t-wait", Timeouts(schedule_to_start_s=1))

    record = await mesh.client.wait("t-wait", timeout=20)

    assert record.state == "timed_out" and "no agent started it within 1s" in record.reason
    assert record.timeouts == Timeouts(schedule_to_start_s=1)
    (ended,) = [e for e in await history.read_events(mesh.bus.js, "t-wait") if isinstance(e, TimedOut)]
    assert ended.timer == "schedule_to_start"
    queued = next(e for e in await history.read_events(mesh.bus.js, "t-wait") if isinstance(e, Queued))
    assert (ended.at - queued.at).total_seconds() >= 1  # not before its time
    await eventually(lambda: released(mesh.client))


async def test_a_task_started_in_time_is_not_timed_out_by_its_schedule_to_start(mesh: Mesh) -> None:
    request = TaskRequest(
        id="t-quick", tenant="acme", role="planner", prompt="Plan", timeouts=Timeouts(schedule_to_start_s=1)
    )
    await mesh.client.submit(request)
    assert (await mesh.client.wait("t-quick", timeout=20)).state == "succeeded"
    # The timer comes due after the task ended, and changes nothing.
    await eventually(lambda: timer_came_due(mesh.client, "t-quick"))
    assert (await mesh.client.get("t-quick")).state == "succeeded"


async def test_cancelling_a_queued_task_ends_it_and_releases_its_hold(mesh: Mesh) -> None:
    await queued_task(mesh.client, "t-cq")

    event = await mesh.client.cancel("t-cq", by="alice", reason="not needed")

    assert isinstance(event, Cancelled)
    record = await mesh.client.wait("t-cq", timeout=20)
    assert (record.state, record.cancelled_by, record.reason) == ("cancelled", "alice", "not needed")
    await eventually(lambda: released(mesh.client))
    with pytest.raises(AlreadyEnded):
        await mesh.client.cancel("t-cq")


async def test_cancelling_a_parked_task_rejects_it_at_the_guard_so_no_approval_can_run_it(mesh: Mesh) -> None:
    await mesh.client.submit(
        TaskRequest(id="t-cp", tenant="acme", role="planner", prompt="Plan", data_region=PINNED)
    )
    await awaiting(mesh.client, "t-cp")

    await mesh.client.cancel("t-cp", by="bob")

    assert (await mesh.client.wait("t-cp", timeout=20)).state == "cancelled"
    with pytest.raises(NotAwaitingApproval):
        await mesh.client.approve("t-cp", by="alice")
    # The guard took the cancel's rejection: an approval sent anyway (a stale UI) finds the slot taken.
    assert not [e for e in await mesh.client.events("t-cp") if isinstance(e, Queued)]
    assert await held(mesh.client) == 0


async def test_cancel_over_http(mesh: Mesh) -> None:
    await queued_task(mesh.client, "t-http-c")

    status, body = await mesh.post("/v1/tasks/t-http-c/cancel", {"by": "carol", "reason": "wrong repo"})
    assert (status, body["cancelled"], body["by"], body["was"]) == (202, True, "carol", "queued")
    assert (await mesh.client.wait("t-http-c", timeout=20)).state == "cancelled"

    status, body = await mesh.post("/v1/tasks/t-http-c/cancel", {})
    assert status == 409 and body["state"] == "cancelled"
    status, body = await mesh.post("/v1/tasks/t-none/cancel", {})
    assert status == 404
    status, body = await mesh.post("/v1/tasks/t-http-c/cancel", {"reasn": "typo"})
    assert status == 400 and "reasn" in str(body)


async def test_the_sdk_cancel_of_an_unknown_task_is_not_found(settings: Settings) -> None:
    async with open_client(settings) as client:
        with pytest.raises(NotFound):
            await client.cancel("t-nobody")


async def test_a_task_running_past_its_start_to_close_is_stopped_and_timed_out(
    mesh: Mesh, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pid"
    request = TaskRequest(
        id="t-long",
        tenant="acme",
        role="tester",
        prompt="Run the suite",
        commands=[f"echo $$ > {pid_file}; sleep 60"],
        timeouts=Timeouts(start_to_close_s=1),
    )
    await mesh.client.submit(request)

    record = await mesh.client.wait("t-long", timeout=30)

    assert record.state == "timed_out" and "still running 1s after it started" in record.reason
    events = await mesh.client.events("t-long")
    started = next(e for e in events if isinstance(e, Started))
    ended = next(e for e in events if isinstance(e, TimedOut))
    assert ended.timer == "start_to_close" and (ended.at - started.at).total_seconds() >= 1
    pid = int(pid_file.read_text())
    await eventually(lambda: gone(pid))  # the worker stopped the command it was running
    await eventually(lambda: released(mesh.client))


async def gone(pid: int) -> bool:
    """Dead: no such process, or a zombie nobody has reaped yet."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (FileNotFoundError, IndexError):
        return True
