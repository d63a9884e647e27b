"""The edges of the HTTP API as a user meets them: wrong methods, the index, deep bodies, strict decisions."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import msgspec
import pytest

from maestro import codec, topics, tracing
from maestro.bus import Bus
from maestro.policy.bundle import TOO_DEEP
from maestro.settings import Settings
from services.orchestrator.bodies import field_of
from tests.services.orchestrator.api_client import Api
from tests.services.orchestrator.support import orchestrator

DEPTH = 5000
PLAN = '"tenant": "acme", "role": "planner", "prompt": "p"'


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    async with orchestrator(settings) as port, aiohttp.ClientSession() as http:
        yield Api(http, f"http://127.0.0.1:{port}")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/v1/tasks", "GET,POST"),
        ("POST", "/v1/tasks/t-1", "GET"),
        ("PUT", "/v1/tasks/t-1/events", "GET"),
        ("GET", "/v1/tasks/t-1/approve", "POST"),
        ("GET", "/v1/tasks/t-1/reject", "POST"),
        ("POST", "/readyz", "GET"),
    ],
)
async def test_a_wrong_method_is_a_405_with_the_methods_the_path_takes(
    api: Api, method: str, path: str, allowed: str
) -> None:
    status, answer, resp = await api.answer(method, path)
    assert (status, resp.headers["Allow"]) == (405, allowed)
    assert answer["error"] == f"{method} is not allowed on {path}; it takes {allowed.replace(',', ', ')}"


async def test_the_root_is_a_json_index_of_the_api(api: Api) -> None:
    status, index = await api.call("GET", "/")
    assert status == 200
    assert index["service"] == "orchestrator" and index["version"]
    assert index["links"]["/v1/tasks"] == ["GET", "POST"]
    assert index["links"]["/v1/tasks/{id}"] == ["GET"]
    assert index["links"]["/v1/tasks/{id}/approve"] == ["POST"]
    assert index["links"]["/readyz"] == ["GET"]


async def test_a_path_outside_the_api_is_a_json_404(api: Api) -> None:
    for path in ("/nothing", "/v1", "/v1/tasks/t-1/nothing", "/v2/tasks"):
        assert await api.call("GET", path) == (404, {"error": f"no such endpoint: GET {path}"})


@pytest.mark.parametrize(
    "body",
    [
        "{" + PLAN + ', "x": ' + "[" * DEPTH + "]" * DEPTH + "}",
        "{" + PLAN + ', "x": ' + '{"a":' * DEPTH + "1" + "}" * DEPTH + "}",
        "{" + PLAN + ', "labels": ' + '{"a":' * DEPTH + '"v"' + "}" * DEPTH + "}",
        '{"tenant": "acme", "role": "planner", "prompt": ' + "[" * DEPTH + "]" * DEPTH + "}",
        "[" * DEPTH + "]" * DEPTH,
    ],
    ids=["array-in-unknown-field", "object-in-unknown-field", "object-in-labels", "array-as-prompt", "whole"],
)
async def test_a_task_nested_thousands_deep_is_a_400_never_a_500(api: Api, body: str) -> None:
    status, answer = await api.call("POST", "/v1/tasks", data=body)
    assert status == 400, answer
    assert answer["error"].startswith("invalid task request") and "field" in answer


@pytest.mark.parametrize("decision", ["approve", "reject"])
async def test_a_decision_nested_thousands_deep_is_a_400(api: Api, decision: str) -> None:
    for body in (
        '{"reason": "r", "x": ' + "[" * DEPTH + "]" * DEPTH + "}",
        '{"reason": ' + '{"a":' * DEPTH + "1" + "}" * DEPTH + "}",
    ):
        status, answer = await api.call("POST", f"/v1/tasks/t-1/{decision}", data=body)
        assert status == 400 and answer["error"].startswith("invalid decision"), answer


@pytest.mark.parametrize("decision", ["approve", "reject"])
async def test_a_decision_with_an_unknown_field_is_a_400_naming_it(api: Api, decision: str) -> None:
    body = {"by": "ann", "reason": "looks fine", "reasn": "typo"}
    status, answer = await api.call("POST", f"/v1/tasks/t-1/{decision}", json=body)
    assert (status, answer["field"]) == (400, "$.reasn")
    assert "unknown field" in answer["error"]


async def test_every_error_names_the_field_at_fault(api: Api) -> None:
    status, answer = await api.call("POST", "/v1/tasks/t-1/approve", json={"by": 7})
    assert (status, answer["field"]) == (400, "$.by")
    status, answer = await api.call("POST", "/v1/tasks/t-1/approve", data=b"{nope")
    assert (status, answer["field"]) == (400, "$")
    status, answer = await api.call("GET", "/v1/tasks/not.an.id/events")
    assert (status, answer["field"]) == (400, "id")


class _File(msgspec.Struct):
    path: str
    content: str = ""

    def __post_init__(self) -> None:
        if self.path.startswith("/"):
            raise ValueError(f"context path {self.path!r} is absolute")


class _Task(msgspec.Struct):
    region: str | None = None
    files: list[_File] = []
    labels: dict[str, _File] = {}

    def __post_init__(self) -> None:
        if self.region == "mars":
            raise ValueError("region 'mars' is not on Earth")
        if self.region == "moon":
            raise ValueError("nothing is served from there")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"region": "mars"}, "$.region"),
        ({"files": [{"path": "a"}, {"path": "/etc/passwd"}]}, "$.files[1].path"),
        ({"labels": {"x": {"path": "/etc/passwd"}}}, "$.labels[...].path"),
        ({"files": [{"content": "c"}]}, "$.files[0].path"),
        ({"files": [{"path": 1}]}, "$.files[0].path"),
        ({"region": "moon"}, "$"),
    ],
)
def test_an_error_found_by_a_rule_on_the_whole_message_names_the_field_it_is_about(
    body: dict[str, Any], field: str
) -> None:
    with pytest.raises(codec.DecodeError) as caught:
        codec.decode_strict(_Task, json.dumps(body))
    assert field_of(_Task, str(caught.value)) == field


async def test_a_malformed_last_event_id_is_a_400_whether_or_not_the_stream_is_followed(api: Api) -> None:
    # Found by Schemathesis: the header was checked only with follow=1, so a bad one was ignored without it.
    for query in ("", "?follow=0", "?follow=1"):
        for value in ("", "x", "-1", "1.5"):
            status, answer = await api.call(
                "GET", f"/v1/tasks/t-1/events{query}", headers={"Last-Event-ID": value}
            )
            assert (status, answer["field"]) == (400, "Last-Event-ID"), (query, value)


@pytest.mark.parametrize("given", ["", "not-a-trace", "00-" + "z" * 32 + "-" + "0" * 16 + "-01"])
async def test_a_malformed_traceparent_is_ignored_and_a_trace_starts_here(
    api: Api, bus: Bus, given: str
) -> None:
    # W3C Trace Context: a traceparent that does not parse is dropped and the trace restarts. Found by
    # Schemathesis: it was passed on as it came, so the task's events carried no trace at all.
    task = {"id": "t-traced", "tenant": "acme", "role": "planner", "prompt": "p"}
    status, _ = await api.call("POST", "/v1/tasks", json=task, headers={"traceparent": given})
    assert status == 202
    stored = await bus.js.get_last_msg(topics.STREAM_REQUESTS, topics.REQUESTS.subject("acme"))
    sent = (stored.headers or {}).get(topics.HEADER_TRACEPARENT)
    assert sent != given and tracing.trace_id(sent) is not None


@pytest.mark.parametrize("action", ["approve", "reject", "cancel"])
async def test_a_decision_over_the_request_size_limit_is_a_413_as_every_body_is(
    api: Api, settings: Settings, action: str
) -> None:
    # Over MAESTRO_MAX_REQUEST_BYTES but under aiohttp's own limit: read in full and decoded (a 400) before.
    padding = "x" * (settings.max_request_bytes + 1)
    status, answer = await api.call("POST", f"/v1/tasks/t-1/{action}", json={"reason": padding})
    assert status == 413, answer


@pytest.mark.parametrize("tenant", ["", "?tenant=acme"])
async def test_a_bundle_nested_thousands_deep_is_a_400_never_a_500(api: Api, tenant: str) -> None:
    # Found by tests/e2e/test_api_contract.py: the YAML parser recursed past Python's limit (a 500).
    for text in ("[" * DEPTH + "]" * DEPTH, "version: x\ndefault: " + "[" * DEPTH + "]" * DEPTH):
        status, answer = await api.call(
            "PUT", f"/v1/policy{tenant}", data=text, headers={"Content-Type": "application/yaml"}
        )
        assert status == 400, answer
        assert [problem["message"] for problem in answer["problems"]] == [TOO_DEEP]


async def test_a_whole_number_written_with_a_fraction_is_the_integer_it_equals(api: Api) -> None:
    # JSON (and the document's JSON Schema) does not tell 5 from 5.0: a client that writes 5.0 for an
    # integer is right. Found by Schemathesis: most of its valid tasks and workflows were refused for it.
    task = {"id": "t-whole", "tenant": "acme", "role": "planner", "prompt": "p", "priority": 5.0}
    status, answer = await api.call("POST", "/v1/tasks", json={**task, "retry": {"max_attempts": 2.0}})
    assert status == 202, answer
    step = {"name": "plan", "role": "planner", "prompt": "p", "priority": 3.0}
    workflow = {"id": "wf-whole", "tenant": "acme", "steps": [step], "max_cost_micro_usd": 1e6}
    status, answer = await api.call("POST", "/v1/workflows", json=workflow)
    assert status == 202, answer
    # Beside a value nested thousands deep, it is still a 400, never a 500.
    deep = json.dumps({**task, "id": "t-deep", "x": 0}).replace('"x": 0', '"x": ' + "[" * DEPTH + "]" * DEPTH)
    status, answer = await api.call("POST", "/v1/tasks", data=deep)
    assert status == 400, answer
    # A number with a fraction is not an integer, nor one past what a float holds exactly.
    for priority in (5.5, 1e300):
        status, answer = await api.call(
            "POST", "/v1/tasks", json={**task, "id": "t-frac", "priority": priority}
        )
        assert (status, answer["field"]) == (400, "$.priority"), answer
