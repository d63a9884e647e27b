"""A task the guard sends to a human, end to end: approved over HTTP, rejected by the CLI, timed out."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import aiohttp
import pytest

from maestro import history, topics
from maestro.bus import Bus
from maestro.client import Client, NotAwaitingApproval, open_client
from maestro.errors import NotFound
from maestro.policy import bundle_store
from maestro.runtime import running_service
from maestro.settings import Settings
from proto.v1 import ApprovalDecision, AwaitingApproval, Queued, Rejected, Succeeded, TaskRecord, TaskRequest
from services.agents.service import SERVICE as AGENTS
from services.budget.service import SERVICE as BUDGET
from services.guard.service import SERVICE as GUARD
from tests.e2e.conftest import wait_for_agents, wait_for_budget
from tests.services.orchestrator.support import orchestrator

MAESTRO = str(Path(sys.executable).parent / "maestro")
# No bundle says where the workers run, so pinning the data to the EU makes the worker's location
# unknown: the residency family sends that to a human.
PINNED = "eu"
SHORT_TIMEOUT_BUNDLE = b"""\
version: approval-test
default:
  approval_timeout_s: 0.5
"""


class Mesh:
    """A client and the HTTP API's port on a mesh running in this process."""

    def __init__(self, client: Client, port: int) -> None:
        self.client = client
        self.port = port

    @property
    def bus(self) -> Bus:
        return self.client.bus

    async def post(self, path: str, body: dict[str, str]) -> tuple[int, dict[str, object]]:
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"http://127.0.0.1:{self.port}{path}", json=body) as resp,
        ):
            return resp.status, await resp.json()


async def start(settings: Settings, stack: AsyncExitStack) -> Mesh:
    for service in (BUDGET, AGENTS, GUARD):
        await stack.enter_async_context(running_service(service, settings))
    port = await stack.enter_async_context(orchestrator(settings))
    client = await stack.enter_async_context(open_client(settings))
    await wait_for_budget(client)
    await wait_for_agents(client)
    return Mesh(client, port)


@pytest.fixture
async def mesh(settings: Settings) -> AsyncIterator[Mesh]:
    async with AsyncExitStack() as stack:
        yield await start(settings.with_(approval_sweep_s=0.2), stack)


async def awaiting(client: Client, task_id: str, within: float = 15.0) -> TaskRecord:
    """Wait until the task's record says it awaits approval (what `maestro status` shows a human)."""
    async with asyncio.timeout(within):
        while True:
            try:
                record = await client.get(task_id)
                if record.state == "awaiting_approval":
                    return record
                assert record.state == "pending", record
            except NotFound:
                pass
            await asyncio.sleep(0.02)


async def parked_task(client: Client, task_id: str, tenant: str = "acme") -> TaskRecord:
    await client.submit(
        TaskRequest(id=task_id, tenant=tenant, role="planner", prompt="Plan a CLI", data_region=PINNED)
    )
    record = await awaiting(client, task_id)
    assert record.verdict == "approve"
    return record


async def test_approved_over_http_the_task_runs_and_says_who_approved_it(mesh: Mesh) -> None:
    await parked_task(mesh.client, "t-http")
    events = await history.read_events(mesh.bus.js, "t-http")
    (waiting,) = [e for e in events if isinstance(e, AwaitingApproval)]
    assert waiting.expires_at is not None and waiting.expires_at > waiting.at
    ledger_before = await mesh.client.ledger("acme")
    assert ledger_before.held_micro_usd == 0  # nothing is reserved while it waits

    status, body = await mesh.post("/v1/tasks/t-http/approve", {"by": "alice", "reason": "looks fine"})
    assert (status, body["approved"], body["by"]) == (202, True, "alice")

    record = await mesh.client.wait("t-http", timeout=30)
    assert (record.state, record.approved_by, record.approval_reason) == ("succeeded", "alice", "looks fine")
    assert record.approved_at is not None
    events = await history.read_events(mesh.bus.js, "t-http")
    (queued,) = [e for e in events if isinstance(e, Queued)]
    assert (queued.approved_by, queued.approval_reason, queued.reservation_id != "") == (
        "alice",
        "looks fine",
        True,
    )
    assert [type(e) for e in events if isinstance(e, Succeeded)] == [Succeeded]

    status, body = await mesh.post("/v1/tasks/t-http/approve", {"by": "alice"})
    assert status == 409 and "succeeded" in str(body["error"])
    status, _ = await mesh.post("/v1/tasks/t-nope/approve", {"by": "alice"})
    assert status == 404
    status, body = await mesh.post("/v1/tasks/t-http/reject", {"by": "alice"})
    assert status == 400 and body["field"] == "$.reason"


async def test_rejected_by_the_cli_the_task_ends_rejected_with_who_and_why(
    mesh: Mesh, settings: Settings
) -> None:
    await parked_task(mesh.client, "t-cli")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAESTRO_")}
    env["MAESTRO_NATS_URL"] = str(settings.nats_url)

    done = await asyncio.to_thread(
        subprocess.run,
        [MAESTRO, "reject", "t-cli", "--reason", "not this sprint", "--by", "bob"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert (done.returncode, done.stdout.strip()) == (0, "rejected t-cli (by bob): not this sprint"), (
        done.stderr
    )
    record = await mesh.client.wait("t-cli", timeout=30)
    assert (record.state, record.rejected_by, record.reason) == (
        "rejected",
        "bob",
        "rejected by bob: not this sprint",
    )
    assert "approval.rejected" in record.violations
    assert (await mesh.client.ledger("acme")).held_micro_usd == 0


async def test_approving_twice_has_one_outcome(mesh: Mesh) -> None:
    await parked_task(mesh.client, "t-twice")

    first = await mesh.client.approve("t-twice", by="alice")
    with pytest.raises(NotAwaitingApproval):
        await mesh.client.approve("t-twice", by="carol")
    with pytest.raises(NotAwaitingApproval):
        await mesh.client.reject("t-twice", by="dave", reason="too late")

    record = await mesh.client.wait("t-twice", timeout=30)
    assert (first.by, record.state, record.approved_by) == ("alice", "succeeded", "alice")
    events = await history.read_events(mesh.bus.js, "t-twice")
    assert len([e for e in events if isinstance(e, Queued)]) == 1
    assert not [e for e in events if isinstance(e, Rejected)]


async def test_a_decision_under_another_tenant_cannot_approve_a_task(mesh: Mesh) -> None:
    await parked_task(mesh.client, "t-iso")
    forged = ApprovalDecision(task_id="t-iso", tenant="globex", approved=True, by="mallory")
    await mesh.bus.streams.publish(
        topics.APPROVALS.at("globex"), forged, msg_id=topics.approval_msg_id("t-iso", "globex")
    )
    sub = await mesh.bus.js.pull_subscribe(topics.DLQ.subject("guard-approvals"), stream=topics.STREAM_DLQ)
    (letter,) = await sub.fetch(1, timeout=10)
    assert b"no task t-iso awaits approval for tenant globex" in letter.data

    assert (await mesh.client.get("t-iso")).state == "awaiting_approval"
    await mesh.client.reject("t-iso", by="bob", reason="forged approval seen")  # the owner's slot is free
    record = await mesh.client.wait("t-iso", timeout=30)
    assert (record.state, record.rejected_by) == ("rejected", "bob")


async def test_an_approval_nobody_gives_in_time_rejects_the_task(settings: Settings) -> None:
    async with AsyncExitStack() as stack:
        client = await stack.enter_async_context(open_client(settings))
        await bundle_store.push(client.bus.js, SHORT_TIMEOUT_BUNDLE)
        mesh = await start(settings.with_(approval_sweep_s=0.1), stack)
        await mesh.client.submit(
            TaskRequest(id="t-late", tenant="acme", role="planner", prompt="Plan", data_region=PINNED)
        )

        record = await mesh.client.wait("t-late", timeout=30)

        assert (record.state, record.reason, record.rejected_by) == (
            "rejected",
            "approval timed out",
            "approval-timeout",
        )
        assert "approval.timed-out" in record.violations
        with pytest.raises(NotAwaitingApproval):
            await mesh.client.approve("t-late", by="alice")
