"""The HTTP API keeps its contract: Schemathesis, run on the OpenAPI document against a running mesh with
tokens on, finds nothing; and every body an operation takes is refused with a documented 4xx when it holds
an unknown field, is over the size limit or is nested ten thousand deep.

The mesh is real (nats-server, budget, guard, orchestrator, agents) except that no agent serves the tester:
fuzzed tasks carry fuzzed shell commands, which must never run on the machine running the tests. Their
tasks wait, queued, as a tester's do with no tester running (the orchestrator says so in `warning`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from chaos import contract
from maestro.access.grants import mint
from maestro.access.token_store import TokenStore
from maestro.operations import OPERATIONS, Operation
from maestro.runtime import open_bus, running_service
from maestro.settings import Settings
from proto.v1.access import SCOPES
from proto.v1.ids import ROLES
from services.agents.service import SERVICE as AGENTS
from services.budget.service import SERVICE as BUDGET
from services.guard.service import SERVICE as GUARD
from tests.services.orchestrator.support import orchestrator

UNTRUSTED = "tester"
"""The one role that runs a task's commands."""
CAMPAIGN = contract.Campaign(examples=10, followed_stream_s=0.3)
"""Deterministic (the same inputs every run, so a failure is reproduced by running the test again). Ten
inputs per operation and phase, beside the examples and the coverage phase's boundary and type cases:
about 3,200 requests of 45 operations. A followed stream (which never ends by itself) is read for 0.3 s:
at 1 s, the streams' cases alone took a third of the campaign's 45 s here (now 30 s), and the suite's budget
is tight. `make chaos` runs up to 500 an operation for 75 s, streams read for 3 s, a new seed each run."""
DEPTH = 10_000
WORKFLOW_ID = "wf-contract"
CALL_S = 10.0
"""Longest any call of these tests waits for its answer (a followed stream included)."""


@dataclass(frozen=True)
class Served:
    """The API of a running mesh and an operator's token for it."""

    url: str
    token: str
    settings: Settings

    async def call(self, method: str, path: str, **kw: Any) -> tuple[int, Any, str]:
        """Status, JSON body (or text) and content type of one call, with the operator's token."""
        headers = {"Authorization": f"Bearer {self.token}", **kw.pop("headers", {})}
        timeout = aiohttp.ClientTimeout(total=CALL_S)
        async with (
            aiohttp.ClientSession(timeout=timeout) as http,
            http.request(method, self.url + path, headers=headers, **kw) as resp,
        ):
            text = await resp.text()
            body = json.loads(text) if resp.content_type == "application/json" else text
            return resp.status, body, resp.content_type


@pytest.fixture
async def served(settings: Settings) -> AsyncIterator[Served]:
    secured = settings.with_(
        auth=True,
        roles=tuple(role for role in ROLES if role != UNTRUSTED),
        # Thousands of calls on a loaded machine: a NATS request may wait longer than the tests' usual 2 s,
        # and a 503 is a 5xx, which the campaign counts as a failure.
        request_timeout_s=10.0,
    )
    async with AsyncExitStack() as stack:
        for service in (BUDGET, GUARD, AGENTS):
            await stack.enter_async_context(running_service(service, secured))
        port = await stack.enter_async_context(orchestrator(secured))
        bus = await stack.enter_async_context(open_bus(secured, "contract-test"))
        minted = mint(tenant="*", scopes=SCOPES, subject="contract", now=datetime.now(UTC))
        await TokenStore(bus).add(minted)
        yield Served(f"http://127.0.0.1:{port}", minted.token, secured)


async def test_schemathesis_finds_nothing(served: Served, tmp_path: Path) -> None:
    outcome = await contract.run(served.url, served.token, CAMPAIGN, tmp_path / "schemathesis")
    assert outcome.clean, f"{outcome.summary()}\n{outcome.output[-20_000:]}"
    # It really called the API as the operator all along: the token was never revoked under it.
    assert (await served.call("GET", "/v1/tokens"))[0] == 200


BODIES: dict[str, Any] = {
    "submitTask": {"id": "t-contract", "tenant": "acme", "role": "planner", "prompt": "Plan"},
    "submitWorkflow": {
        "id": "wf-other",
        "tenant": "acme",
        "steps": [{"name": "plan", "role": "planner", "prompt": "Plan"}],
    },
    "approveTask": {"reason": "fine"},
    "rejectTask": {"reason": "no"},
    "cancelTask": {"reason": "stop"},
    "retryTask": {"reason": "now"},
    "claimTask": {"reason": "mine"},
    "releaseTask": {"reason": "later"},
    "completeTask": {"answer": {"approved": True}},
    "putPerson": {"id": WORKFLOW_ID, "skills": ["ops"]},
    "cancelWorkflow": {"reason": "stop"},
    "pauseWorkflow": {"reason": "wait"},
    "resumeWorkflow": {"reason": "go"},
    "setBudget": {"limit_micro_usd": 1_000_000},
    "createToken": {"tenant": "acme", "scopes": ["read"]},
    "pushPolicy": {"version": "contract"},
    "receiveGithubHook": {"action": "opened", "repository": {"full_name": "acme/app"}},
}
"""A body each operation would take, to spoil; a new operation with a body fails the test until it is here."""
OPEN: dict[str, str] = {
    "receiveGithubHook": "GitHub's payload: a field GitHub adds is no error, and an unsigned one is a 401",
}
"""Operations whose body may hold fields Maestro does not know, and why; any documented 4xx will do."""
PATHS = {"id": WORKFLOW_ID, "tenant": "acme"}
"""Path parameters: the workflow the fixture runs (a workflow's order reads its record before its body); a
task's decision and cancellation read their body first, so an id nobody used is as good."""

BODY_OPERATIONS = [op for op in OPERATIONS if op.body is not None]


def _path(operation: Operation) -> str:
    if operation.path.startswith("/v1/tasks/"):
        return operation.path.format(id="t-nobody")
    return operation.path.format(**PATHS)


def _documented(document: dict[str, Any], operation: Operation) -> set[int]:
    """The statuses the campaign's document lists for `operation` (the table's, with known gaps filled)."""
    responses = document["paths"][operation.path][operation.method.lower()]["responses"]
    return {int(status) for status in responses}


async def _send(served: Served, operation: Operation, data: str) -> tuple[int, Any]:
    """Send `data` as the operation's body (JSON; a bundle's YAML, of which JSON is a part)."""
    status, body, content_type = await served.call(
        operation.method, _path(operation), data=data.encode(), headers={"Content-Type": operation.body_media}
    )
    assert content_type == "application/json", (operation.id, status, body)
    assert isinstance(body, dict) and isinstance(body.get("error"), str), (operation.id, body)
    return status, body


def test_every_operation_with_a_body_has_one_to_spoil() -> None:
    assert {op.id for op in BODY_OPERATIONS} <= set(BODIES)


async def test_unknown_fields_oversized_and_deeply_nested_bodies_get_their_documented_4xx(
    served: Served,
) -> None:
    workflow = {
        "id": WORKFLOW_ID,
        "tenant": "acme",
        "steps": [{"name": "p", "role": "planner", "prompt": "P"}],
    }
    assert (await served.call("POST", "/v1/workflows", json=workflow))[0] == 202
    limit = served.settings.max_request_bytes
    document = contract.document()
    for operation in BODY_OPERATIONS:
        good = BODIES[operation.id]
        documented = _documented(document, operation)
        strict = operation.id not in OPEN

        status, answer = await _send(served, operation, json.dumps({**good, "surprise": 1}))
        assert status in documented and 400 <= status < 500, (operation.id, answer)
        if strict:
            named = answer.get("field") or json.dumps(answer.get("problems"))
            assert (status, "surprise" in named) == (400, True), (operation.id, answer)

        status, answer = await _send(served, operation, json.dumps({**good, "surprise": "x" * limit}))
        assert status == 413 and status in documented, (operation.id, answer)

        nested = "[" * DEPTH + "]" * DEPTH
        for body in (nested, json.dumps(good)[:-1] + f', "surprise": {nested}}}'):
            status, answer = await _send(served, operation, body)
            assert status in documented and 400 <= status < 500, (operation.id, answer)
            assert status == 400 or not strict, (operation.id, answer)


async def test_a_followed_stream_of_an_unknown_task_is_a_404_at_once(served: Served) -> None:
    async with asyncio.timeout(CALL_S):
        status, answer, _ = await served.call("GET", "/v1/tasks/t-nobody/events?follow=1")
    assert (status, answer["error"]) == (404, "no task t-nobody")
