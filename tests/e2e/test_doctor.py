"""`maestro doctor` against a real mesh, as a user runs it: healthy first, then each injected problem found.

The mesh runs no tester agent (a role with no worker), and its budget never sweeps in the test's time, so a
hold past its ttl stays; the doctor is told that a sweep comes every 0.05 s, so such a hold is late at once.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from maestro import codec, presence, topics
from maestro.backlog import durables, read_backlog
from maestro.client import Client
from maestro.doctor.render import Report
from maestro.settings import Settings
from proto.v1 import ROLES, Reserve, TaskRecord, TaskRequest, Timeouts
from tests.e2e.conftest import in_state, open_mesh
from tests.maestro.command import maestro
from tests.maestro.test_presence import eventually

SERVED = tuple(role for role in ROLES if role != "tester")
REVIEWS = {topics.DURABLE_ORCHESTRATOR_REVIEWS, topics.DURABLE_ORCHESTRATOR_REVIEW_ENDS}


@pytest.fixture
async def mesh(settings: Settings) -> AsyncIterator[Client]:
    async with AsyncExitStack() as stack:
        yield await open_mesh(settings.with_(roles=SERVED, budget_sweep_s=3600.0), stack)


async def doctor(settings: Settings) -> tuple[int, Report]:
    """`maestro doctor --json` as a user runs it, with the mesh's ack wait; its exit code and report. In a
    thread: the mesh runs on this test's event loop, and answers the doctor only while it is free."""
    done = await asyncio.to_thread(
        maestro,
        "doctor",
        "--json",
        nats_url=settings.nats_url,
        MAESTRO_ACK_WAIT_S=str(settings.ack_wait_s),
        MAESTRO_BUDGET_SWEEP_S="0.05",
    )
    assert done.stderr == ""
    return done.returncode, msgspec.json.decode(done.stdout, type=Report)


def not_ok(report: Report) -> dict[tuple[str, str], str]:
    return {(f.check, f.subject): f"{f.severity}: {f.message}" for f in report.findings if f.severity != "ok"}


async def started(client: Client) -> bool:
    """Whether every service made its consumers, the agents announced their roles, and both micro
    services answer: what a mesh that has finished starting shows."""
    backlog = await read_backlog(client.bus.js, durables(SERVED))
    served = await presence.roles_with_worker(client.bus)
    running = {s.name for s in await client.bus.discovery.stats()}
    return (
        {d.consumer for d in backlog.missing} <= REVIEWS
        and served == set(SERVED)
        and {topics.BUDGET_SERVICE, topics.ORCHESTRATOR_SERVICE, topics.DISPATCHER_SERVICE} <= running
    )


async def test_a_healthy_mesh_passes_and_each_injected_problem_is_then_found(
    mesh: Client, settings: Settings
) -> None:
    bus = mesh.bus
    await eventually(lambda: started(mesh))

    code, report = await doctor(settings)
    assert not_ok(report) == {("workers", "tester"): "warn: no running agent serves it"}
    assert (code, report.healthy) == (0, True)
    said = {(f.check, f.subject) for f in report.findings}
    assert ("stream", topics.STREAM_GATE) in said and ("service", topics.BUDGET_SERVICE) in said

    # A tester task queues with nobody to run it.
    await mesh.submit(TaskRequest(id="t-waits", tenant="acme", role="tester", prompt="Test it"))
    await in_state(mesh, "t-waits", "queued")
    # Doctor reads the stored records: a task that has not started is stored within the waiting linger.
    records = await bus.js.key_value(topics.BUCKET_TASKS)
    await eventually(lambda: _stored(records, "t-waits"))
    # A request that does not decode goes to the DLQ.
    letters = await bus.nc.subscribe(topics.DLQ.all)
    await bus.nc.publish(topics.REQUESTS.subject("acme"), b"{not json")
    await letters.next_msg(timeout=10)
    await letters.unsubscribe()
    # A task running an hour past its start-to-close time-out: its record as the orchestrator writes it,
    # left as an orchestrator that stopped folding events would leave it.
    hour_ago = datetime.now(UTC) - timedelta(hours=1)
    stuck = TaskRecord(
        id="t-stuck",
        tenant="acme",
        state="running",
        role="planner",
        created_at=hour_ago,
        updated_at=hour_ago,
        started_at=hour_ago,
        attempts=1,
        timeouts=Timeouts(start_to_close_s=60),
    )
    await bus.streams.put(topics.BUCKET_TASKS, stuck.id, codec.encode(stuck))
    # A hold whose ttl runs out at once, which no sweep releases while the test runs.
    held = Reserve(tenant="hold-co", task_id="t-held", estimate_micro_usd=1000, ttl_s=0.01)
    assert (await bus.calls.request(topics.BUDGET_RESERVE, held, key="hold-co")).granted
    # And a stream deleted (the test's connection has admin's rights on this server).
    await bus.js.delete_stream(topics.STREAM_GATE)

    code, report = await doctor(settings)
    found = not_ok(report)
    assert code == 1 and not report.healthy
    assert found.pop(("stream", topics.STREAM_GATE)) == f"problem: {topics.STREAM_GATE} is missing"
    dlq = found.pop(("dlq", topics.STREAM_DLQ))
    assert dlq.startswith("problem: 1 dead letter, the newest") and "#1 guard: undecodable" in dlq
    assert found.pop(("tasks", "t-stuck")) == "problem: running 59m past its time-out (acme, planner)"
    assert found.pop(("workers", "tester")) == (
        "problem: no running agent serves it; 1 of its tasks are queued for one"
    )
    holds = found.pop(("holds", topics.BUCKET_BUDGET))
    assert holds.startswith("problem: 1 holds ($0.001000) past their ttl") and holds.endswith("hold-co (1)")
    assert found == {}
    # What an autoscaler reads: the tester's task waits for its turn.
    waiting = next(f.message for f in report.findings if f.check == "backlog")
    assert "tester 1" in waiting and "planner 0" in waiting
    assert all(f.fix for f in report.findings if f.severity != "ok")


def test_a_server_that_cannot_be_reached_exits_2() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nobody listens once it is closed
    done = maestro("doctor", nats_url=f"nats://127.0.0.1:{port}", MAESTRO_REQUEST_TIMEOUT_S="0.5")
    assert done.returncode == 2
    first, verdict = done.stdout.splitlines()
    assert first.startswith(f"problem  server    nats://127.0.0.1:{port}  cannot reach NATS")
    assert "-> start Maestro (maestro up) or NATS" in first
    assert verdict == "unreachable: 1 problem, 0 warnings, 0 ok"


async def _stored(records: KeyValue, key: str) -> bool:
    try:
        await records.get(key)
    except KeyNotFoundError:
        return False
    return True
