"""Listing tasks and workflows, and following a task's events, over the HTTP API on a real nats-server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from maestro import claims, topics
from maestro.bus import Bus
from maestro.listing import TooMany
from maestro.presence import announcing
from maestro.scan import current_values
from maestro.settings import Settings
from proto.v1 import TaskRecord
from proto.v1.ids import ROLES
from proto.v1.workflows import Step, Workflow, WorkflowRecord
from services.orchestrator.store import TaskStore
from services.orchestrator.workflows.store import WorkflowStore
from tests.services.orchestrator.api_client import Api
from tests.services.orchestrator.support import emit, lifecycle, orchestrator

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
async def api(settings: Settings, bus: Bus) -> AsyncIterator[Api]:
    async with (
        announcing(bus, ROLES, "test-agent"),
        orchestrator(settings) as port,
        aiohttp.ClientSession() as http,
    ):
        yield Api(http, f"http://127.0.0.1:{port}")


async def put_task(bus: Bus, n: int, **fields: Any) -> TaskRecord:
    at = T0 + timedelta(seconds=fields.pop("seconds", n))
    values: dict[str, Any] = {"tenant": "acme", "state": "succeeded", "role": "tester", **fields}
    record = TaskRecord(id=f"t-{n:03d}", created_at=at, updated_at=at, **values)
    await TaskStore(bus).put(record, None)
    return record


async def put_workflow(bus: Bus, n: int, **fields: Any) -> WorkflowRecord:
    at = T0 + timedelta(seconds=n)
    values: dict[str, Any] = {"tenant": "acme", "state": "running", **fields}
    definition = Workflow(
        tenant=values["tenant"], id=f"wf-{n:03d}", steps=[Step(name="a", role="planner", prompt="p")]
    )
    record = WorkflowRecord(
        id=definition.id, created_at=at, updated_at=at, workflow=definition, digest="d", **values
    )
    await WorkflowStore(bus).put(record, None)
    return record


async def test_tasks_are_listed_newest_first_passing_every_filter(api: Api, bus: Bus) -> None:
    await put_task(bus, 1, state="running", labels={"repo": "a", "pr": "7"})
    await put_task(bus, 2, state="failed", labels={"repo": "a"})
    await put_task(bus, 3, tenant="beta", state="running", labels={"repo": "a", "pr": "7"})
    await put_task(bus, 4, state="queued", role="planner", labels={"repo": "a", "pr": "7"})

    async def ids(query: str) -> list[str]:
        status, answer = await api.call("GET", "/v1/tasks" + query)
        assert status == 200, answer
        assert answer["next_cursor"] is None
        return [item["id"] for item in answer["items"]]

    assert await ids("") == ["t-004", "t-003", "t-002", "t-001"]
    assert await ids("?tenant=acme") == ["t-004", "t-002", "t-001"]
    assert await ids("?state=running,queued") == ["t-004", "t-003", "t-001"]
    assert await ids("?state=running&state=failed") == ["t-003", "t-002", "t-001"]
    assert await ids("?role=planner") == ["t-004"]
    assert await ids("?label=repo:a&label=pr:7") == ["t-004", "t-003", "t-001"]
    assert await ids("?tenant=acme&state=running&role=tester&label=pr:7") == ["t-001"]
    assert await ids("?tenant=nobody") == []
    _, answer = await api.call("GET", "/v1/tasks?role=planner")
    assert answer["items"][0]["labels"] == {"repo": "a", "pr": "7"}  # the whole record


async def test_paging_by_cursor_lists_every_task_once(api: Api, bus: Bus) -> None:
    for n in range(23):
        await put_task(bus, n, seconds=n // 4)  # ties on created_at, broken by id
    seen: list[str] = []
    pages = 0
    query = "/v1/tasks?limit=5"
    while True:
        status, answer = await api.call("GET", query)
        assert status == 200, answer
        pages += 1
        seen += [item["id"] for item in answer["items"]]
        if answer["next_cursor"] is None:
            break
        await put_task(bus, 100 + pages)  # a task created while paging is newer than the cursor
        query = f"/v1/tasks?limit=5&cursor={answer['next_cursor']}"  # used as given: URL-safe
    assert pages == 5
    assert seen == [f"t-{n:03d}" for n in range(22, -1, -1)]
    _, answer = await api.call("GET", "/v1/tasks")
    assert len(answer["items"]) == 23 + 4 and answer["next_cursor"] is None


async def test_a_deleted_task_is_not_listed(api: Api, bus: Bus) -> None:
    await put_task(bus, 1)
    await put_task(bus, 2)
    await (await bus.js.key_value(topics.BUCKET_TASKS)).delete("t-001")
    _, answer = await api.call("GET", "/v1/tasks")
    assert [item["id"] for item in answer["items"]] == ["t-002"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?tenant=Not%20A%20Tenant", "tenant"),
        ("?state=sleeping", "state"),
        ("?role=painter", "role"),
        ("?label=nocolon", "label"),
        ("?limit=0", "limit"),
        ("?limit=501", "limit"),
        ("?limit=many", "limit"),
        ("?cursor=abc", "cursor"),
        ("?tenant=a&tenant=b", "tenant"),
        ("?colour=red", "colour"),
    ],
)
async def test_a_bad_parameter_is_a_400_naming_it(api: Api, query: str, field: str) -> None:
    status, answer = await api.call("GET", "/v1/tasks" + query)
    assert status == 400
    assert answer["field"] == field and answer["error"]


async def test_workflows_are_listed_and_paged(api: Api, bus: Bus) -> None:
    await put_workflow(bus, 1, state="succeeded", labels={"team": "x"})
    await put_workflow(bus, 2, labels={"team": "x"})
    await put_workflow(bus, 3, tenant="beta", labels={"team": "x"})
    status, answer = await api.call("GET", "/v1/workflows?label=team:x&limit=2")
    assert status == 200, answer
    assert [w["id"] for w in answer["items"]] == ["wf-003", "wf-002"]
    status, answer = await api.call(
        "GET", f"/v1/workflows?label=team:x&limit=2&cursor={answer['next_cursor']}"
    )
    assert ([w["id"] for w in answer["items"]], answer["next_cursor"]) == (["wf-001"], None)
    status, answer = await api.call("GET", "/v1/workflows?tenant=acme&state=running")
    assert [w["id"] for w in answer["items"]] == ["wf-002"]
    for bad, field in (("?role=tester", "role"), ("?state=queued", "state")):
        status, answer = await api.call("GET", "/v1/workflows" + bad)
        assert (status, answer["field"]) == (400, field)


async def test_a_bucket_past_the_bound_is_refused_unread(bus: Bus) -> None:
    for n in range(3):
        await put_task(bus, n)
    assert len([v async for v in current_values(bus.js, topics.BUCKET_TASKS, most=3)]) == 3
    with pytest.raises(TooMany):
        async for _ in current_values(bus.js, topics.BUCKET_TASKS, most=2):
            pass


async def frames(resp: aiohttp.ClientResponse) -> AsyncIterator[dict[str, str]]:
    """The Server-Sent Events of a response, as they arrive, until the server ends the stream."""
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "text/event-stream"
    frame: dict[str, str] = {}
    async for raw in resp.content:
        line = raw.decode().rstrip("\n")
        if not line:
            if frame:
                yield frame
            frame = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            frame[name] = value


async def test_follow_streams_stored_and_new_events_and_ends_after_the_terminal_one(
    api: Api, bus: Bus
) -> None:
    events = lifecycle("sse-1")
    await claims.claim(bus, "sse-1", "acme", "fingerprint")
    for event in events[:2]:
        await emit(bus, event)
    got: list[dict[str, str]] = []
    async with asyncio.timeout(20), api.http.get(api.base + "/v1/tasks/sse-1/events?follow=1") as resp:
        async for frame in frames(resp):
            got.append(frame)
            if len(got) == 2:  # the stored ones have come: the rest are stored while it follows
                for event in events[2:]:
                    await emit(bus, event)
                await emit(bus, events[3])  # after the terminal event: never sent, the stream has ended
    kinds = [e["event"] for e in got]
    assert kinds == ["task.accepted", "task.queued", "task.started", "task.heartbeat", "task.succeeded"]
    assert [json.loads(e["data"])["kind"] for e in got] == kinds
    seqs = [int(e["id"]) for e in got]
    assert seqs == sorted(seqs) and len(set(seqs)) == 5

    # A reconnecting client names the last event it saw, and hears only what came after.
    headers = {"Last-Event-ID": str(seqs[2])}
    async with (
        asyncio.timeout(20),
        api.http.get(api.base + "/v1/tasks/sse-1/events?follow=1", headers=headers) as resp,
    ):
        rest = [frame async for frame in frames(resp)]
    assert [e["event"] for e in rest] == ["task.heartbeat", "task.succeeded"]


async def test_follow_of_an_unknown_task_is_a_404_and_without_follow_the_answer_is_json(
    api: Api, bus: Bus
) -> None:
    status, answer = await api.call("GET", "/v1/tasks/nobody/events?follow=1")
    assert status == 404 and answer["error"]
    status, answer = await api.call("GET", "/v1/tasks/nobody/events?follow=yes")
    assert (status, answer["field"]) == (400, "follow")
    for event in lifecycle("plain-1"):
        await emit(bus, event)
    status, answer = await api.call("GET", "/v1/tasks/plain-1/events")
    assert status == 200 and [e["kind"] for e in answer][-1] == "task.succeeded"
