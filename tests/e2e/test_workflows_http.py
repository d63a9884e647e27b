"""The workflow routes of the HTTP API against a running mesh: submit, read, refuse, control."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import aiohttp
import pytest

from maestro.settings import Settings
from tests.e2e.test_approval_flow import Mesh, start

DIAMOND: dict[str, Any] = {
    "id": "wf-http",
    "tenant": "acme",
    "labels": {"release": "42"},
    "steps": [
        {"name": "plan", "role": "planner", "prompt": "Plan a CLI"},
        {"name": "code", "role": "implementer", "prompt": "{{ steps.plan.output }}", "needs": ["plan"]},
        {"name": "docs", "role": "doc-writer", "prompt": "Document it", "needs": ["plan"]},
        {"name": "review", "role": "reviewer", "prompt": "Review", "needs": ["code", "docs"]},
    ],
}


@pytest.fixture
async def mesh(settings: Settings) -> AsyncIterator[Mesh]:
    async with AsyncExitStack() as stack:
        yield await start(settings, stack)


async def get(mesh: Mesh, path: str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{mesh.port}{path}") as resp:
        return resp.status, await resp.json()


async def send(mesh: Mesh, path: str, body: object) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"http://127.0.0.1:{mesh.port}{path}", json=body) as resp,
    ):
        return resp.status, await resp.json()


async def test_a_workflow_posted_runs_and_reads_back_with_every_step(mesh: Mesh) -> None:
    status, body = await send(mesh, "/v1/workflows", DIAMOND)
    assert (status, body) == (202, {"id": "wf-http", "tenant": "acme"})

    await mesh.client.wait_workflow("wf-http", timeout=60)
    status, record = await get(mesh, "/v1/workflows/wf-http")

    assert status == 200 and record["state"] == "succeeded" and record["labels"] == {"release": "42"}
    assert [(s["name"], s["state"]) for s in record["steps"]] == [
        ("plan", "succeeded"),
        ("code", "succeeded"),
        ("docs", "succeeded"),
        ("review", "succeeded"),
    ]
    assert record["steps"][1]["task_id"] == "wf-http-code"
    status, body = await send(mesh, "/v1/workflows/wf-http/cancel", {"by": "alice"})
    assert status == 409 and body["state"] == "succeeded"
    status, _ = await send(mesh, "/v1/workflows", DIAMOND)
    assert status == 202  # the same workflow again: the same one
    status, body = await send(mesh, "/v1/workflows", {**DIAMOND, "labels": {}})
    assert status == 409 and body["field"] == "$.id"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"steps": [{"name": "a", "role": "planner", "prompt": "p", "needs": ["a"]}]}, "$.steps[0].needs[0]"),
        ({"steps": [{"name": "a", "role": "pilot", "prompt": "p"}]}, "$.steps[0].role"),
        ({"steps": []}, "$.steps"),
        ({"stepz": []}, "$.stepz"),
        ({"id": "has.dot"}, "$.id"),
        (
            {
                "steps": [
                    {"name": "a", "role": "planner", "prompt": "p", "needs": ["b"]},
                    {"name": "b", "role": "planner", "prompt": "p", "needs": ["a"]},
                ]
            },
            "$.steps",
        ),
    ],
)
async def test_a_bad_workflow_is_refused_naming_the_field(
    mesh: Mesh, change: dict[str, Any], field: str
) -> None:
    status, body = await send(mesh, "/v1/workflows", {**DIAMOND, **change})
    assert status == 400 and body["field"] == field, body


async def test_an_unknown_workflow_is_404(mesh: Mesh) -> None:
    assert (await get(mesh, "/v1/workflows/wf-none"))[0] == 404
    assert (await send(mesh, "/v1/workflows/wf-none/pause", {}))[0] == 404
    assert (await get(mesh, "/v1/workflows/bad.id"))[0] == 400
