"""The HTTP API against the running orchestrator on a real nats-server, as a client sees it."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from maestro import codec, topics
from maestro.bus import Bus
from maestro.presence import announcing
from maestro.runtime import run_service
from maestro.settings import Settings
from proto.v1 import TaskRequest
from proto.v1.ids import ROLES
from services.orchestrator.service import SERVICE
from tests.services.orchestrator.api_client import Api
from tests.services.orchestrator.support import emit, free_port, lifecycle, orchestrator, wait_record

LIMIT = 4096
PLAN = {"tenant": "acme", "role": "planner", "prompt": "p"}


@pytest.fixture
async def api(settings: Settings, bus: Bus) -> AsyncIterator[Api]:
    # Every role has a worker, so no answer carries the warning about tasks that would wait for one.
    async with (
        announcing(bus, ROLES, "test-agent"),
        orchestrator(settings.with_(max_request_bytes=LIMIT)) as port,
        aiohttp.ClientSession() as http,
    ):
        yield Api(http, f"http://127.0.0.1:{port}")


async def queued_requests(bus: Bus) -> list[TaskRequest]:
    info = await bus.js.stream_info(topics.STREAM_REQUESTS)
    first, count = info.state.first_seq, info.state.messages
    return [
        codec.decode(TaskRequest, (await bus.js.get_msg(topics.STREAM_REQUESTS, seq)).data or b"")
        for seq in range(first, first + count)
    ]


async def test_submit_answers_202_with_the_id_and_queues_the_request(api: Api, bus: Bus) -> None:
    body = {"tenant": "acme", "role": "planner", "prompt": "Plan a CLI", "labels": {"repo": "r"}}
    status, answer = await api.call("POST", "/v1/tasks", json=body)
    assert status == 202
    assert answer["tenant"] == "acme" and answer["id"]
    [queued] = await queued_requests(bus)
    assert (queued.id, queued.prompt, queued.labels) == (answer["id"], "Plan a CLI", {"repo": "r"})


async def test_the_same_request_id_twice_is_one_request(api: Api, bus: Bus) -> None:
    body = {"id": "req-once", "tenant": "acme", "role": "tester", "prompt": "run tests"}
    for _ in range(2):
        status, answer = await api.call("POST", "/v1/tasks", json=body)
        assert (status, answer) == (202, {"id": "req-once", "tenant": "acme"})
    assert [r.id for r in await queued_requests(bus)] == ["req-once"]


INVALID: list[tuple[Any, str]] = [
    ({"tenant": "acme", "role": "painter", "prompt": "p"}, "$.role"),
    ({"tenant": "acme", "prompt": "p"}, "$.role"),
    ({"tenant": "Not A Tenant", "role": "planner", "prompt": "p"}, "$.tenant"),
    ({**PLAN, "context": [{"content": "x"}]}, "$.context[0].path"),
    ({**PLAN, "id": "has.dots"}, "$.id"),
    ({**PLAN, "labels": {"repo": 1}}, "$.labels[...]"),
    ([1, 2], "$"),
    # Rules checked on a whole message (__post_init__) name their field too.
    ({**PLAN, "context": [{"path": "a.py"}, {"path": "../../etc/passwd"}]}, "$.context[1].path"),
    ({**PLAN, "context": [{"path": "/etc/passwd"}]}, "$.context[0].path"),
    ({**PLAN, "context": [{"path": "a\u0000b"}]}, "$.context[0].path"),
    ({**PLAN, "data_region": "mars"}, "$.data_region"),
]


async def test_an_invalid_request_is_a_400_naming_the_field(api: Api, bus: Bus) -> None:
    for body, field in INVALID:
        status, answer = await api.call("POST", "/v1/tasks", json=body)
        assert status == 400, body
        assert answer["field"] == field, answer
        assert answer["error"].startswith("invalid task request")
    status, answer = await api.call("POST", "/v1/tasks", data=b"{nope")
    assert status == 400 and answer["field"] == "$" and "malformed" in answer["error"]
    assert await queued_requests(bus) == []


async def test_an_oversized_request_is_a_413(api: Api, bus: Bus) -> None:
    body = json.dumps({"tenant": "acme", "role": "planner", "prompt": "x" * LIMIT}).encode()
    status, answer = await api.call("POST", "/v1/tasks", data=body)
    assert status == 413 and str(LIMIT) in answer["error"]

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the size is only known once read
        yield body[:100]
        yield body[100:]

    status, answer = await api.call("POST", "/v1/tasks", data=chunks())
    assert status == 413 and "error" in answer
    assert await queued_requests(bus) == []


async def test_an_unknown_task_is_a_404_and_a_malformed_id_a_400(api: Api) -> None:
    for path in ("/v1/tasks/t-nobody", "/v1/tasks/t-nobody/events"):
        status, answer = await api.call("GET", path)
        assert status == 404 and "t-nobody" in answer["error"]
    status, answer = await api.call("GET", "/v1/tasks/not.an.id")
    assert (status, answer["field"]) == (400, "id")
    status, answer = await api.call("GET", "/v1/nothing/here")
    assert status == 404 and "no such endpoint" in answer["error"]


async def test_a_task_s_record_and_events_are_readable(api: Api, bus: Bus, settings: Settings) -> None:
    events = lifecycle("task-read")
    for event in events:
        await emit(bus, event)
    records: KeyValue = await bus.js.key_value(topics.BUCKET_TASKS)
    await wait_record(records, "task-read", lambda r: r.state == "succeeded")
    status, record = await api.call("GET", "/v1/tasks/task-read")
    assert status == 200
    assert (record["id"], record["state"], record["output"]) == ("task-read", "succeeded", "exit 0")
    status, listed = await api.call("GET", "/v1/tasks/task-read/events")
    assert status == 200
    assert [e["kind"] for e in listed] == [
        "task.accepted",
        "task.queued",
        "task.started",
        "task.heartbeat",
        "task.succeeded",
    ]
    assert all(e["task_id"] == "task-read" for e in listed)


async def test_a_task_whose_record_lags_its_events_is_read_and_cancelled_from_its_events(
    bus: Bus, settings: Settings
) -> None:
    # The orchestrator writes a task's first events together (here: not before the test ends); meanwhile the
    # API answers from the stored events, as the record will say once written.
    async with (
        orchestrator(settings.with_(record_linger_s=60.0)) as port,
        aiohttp.ClientSession() as http,
    ):
        api = Api(http, f"http://127.0.0.1:{port}")
        accepted, queued, started, *_ = lifecycle("task-lagging")
        for event in (accepted, queued, started):
            await emit(bus, event)
        records: KeyValue = await bus.js.key_value(topics.BUCKET_TASKS)
        status, record = await api.call("GET", "/v1/tasks/task-lagging")
        assert status == 200
        assert (record["state"], record["worker"], record["labels"]) == ("running", "w-1", {"pr": "7"})
        with pytest.raises(KeyNotFoundError):
            await records.get("task-lagging")  # not written yet: the answer came from the events
        status, _ = await api.call("POST", "/v1/tasks/task-lagging/cancel", json={"reason": "not needed"})
        assert status == 202
        await wait_record(records, "task-lagging", lambda r: r.state == "cancelled")
        status, _ = await api.call("GET", "/v1/tasks/no-such-task")
        assert status == 404


async def test_an_id_is_one_task_the_same_request_again_is_202_anything_else_409(api: Api, bus: Bus) -> None:
    first = {**PLAN, "id": "one-id", "labels": {"a": "1", "b": "2"}}
    assert (await api.call("POST", "/v1/tasks", json=first))[0] == 202
    same = {"labels": {"b": "2", "a": "1"}, "id": "one-id", **PLAN}  # other order, same content
    assert await api.call("POST", "/v1/tasks", json=same) == (202, {"id": "one-id", "tenant": "acme"})
    other_tenant = {**first, "tenant": "globex"}
    status, answer = await api.call("POST", "/v1/tasks", json=other_tenant)
    assert (status, answer) == (
        409,
        {"error": "task id one-id belongs to another tenant's task", "field": "$.id"},
    )
    other_content = {**first, "prompt": "something else"}
    status, answer = await api.call("POST", "/v1/tasks", json=other_content)
    assert status == 409 and "other content" in answer["error"]
    assert {r.tenant for r in await queued_requests(bus)} == {"acme"}


async def test_a_body_nested_too_deeply_is_a_400_naming_why(api: Api) -> None:
    deep = '{"tenant": "acme", "role": "planner", "prompt": "p", "x": ' + "[" * 1500 + "]" * 1500 + "}"
    status, answer = await api.call(
        "POST", "/v1/tasks", data=deep, headers={"Content-Type": "application/json"}
    )
    assert (status, answer["error"]) == (400, "invalid task request: nested too deeply")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**PLAN, "comands": ["pytest -q"]}, "$.comands"),
        ({**PLAN, "max_cost_usd": 5}, "$.max_cost_usd"),
        ({**PLAN, "context": [{"path": "a.py", "contnet": "x"}]}, "$.context[0].contnet"),
    ],
)
async def test_an_unknown_field_is_a_400_naming_it_and_nothing_is_queued(
    api: Api, bus: Bus, body: dict[str, Any], field: str
) -> None:
    status, answer = await api.call("POST", "/v1/tasks", json=body)
    assert (status, answer["field"]) == (400, field)
    assert "unknown field" in answer["error"]
    assert await queued_requests(bus) == []


async def test_once_its_intake_is_closed_the_api_answers_503_to_new_tasks_and_still_reads(
    settings: Settings, bus: Bus
) -> None:
    port = free_port()
    stop, close = asyncio.Event(), asyncio.Event()
    running = asyncio.create_task(
        run_service(SERVICE, settings.with_(http_port=port), stop=stop, close_intake=close)
    )
    try:
        async with aiohttp.ClientSession() as http:
            api = Api(http, f"http://127.0.0.1:{port}")
            async with asyncio.timeout(10):
                while True:  # until it serves
                    with contextlib.suppress(aiohttp.ClientError):
                        if (await api.call("POST", "/v1/tasks", json={**PLAN, "id": "before"}))[0] == 202:
                            break
                    await asyncio.sleep(0.02)
            close.set()  # what SIGUSR1 does when `maestro up` drains; the service sees it on its next turn,
            await asyncio.sleep(0)  # long before the request below has gone through a socket
            status, answer = await api.call("POST", "/v1/tasks", json={**PLAN, "id": "after"})
            assert status == 503 and "stopping" in answer["error"]
            assert (await api.call("GET", "/v1/tasks/before"))[0] in (200, 404)  # reads still answer
    finally:
        stop.set()
        await asyncio.wait_for(running, 30)
    assert {r.id for r in await queued_requests(bus)} == {"before"}


async def test_a_model_no_agent_runs_is_a_400_naming_the_models_served(api: Api, bus: Bus) -> None:
    body = {"tenant": "acme", "role": "planner", "prompt": "p", "model": "gpt-5"}
    status, answer = await api.call("POST", "/v1/tasks", json=body)
    assert (status, answer["field"]) == (400, "$.model")
    assert "gpt-5" in answer["error"] and "offline" in answer["error"]
    assert await queued_requests(bus) == []
    status, _ = await api.call("POST", "/v1/tasks", json={**body, "model": "offline"})
    assert status == 202
