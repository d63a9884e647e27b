"""The guard's decisions per rule over time, end to end: a mesh whose guard judges two tenants' requests and
publishes its tallies, read back with tokens through GET /v1/policy/decisions as the console's Policy page
reads them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import aiohttp
import pytest

from maestro.access.token_store import TokenStore
from maestro.settings import Settings
from proto.v1 import ContextFile, TaskRequest
from tests.e2e.test_api_access import Secured
from tests.e2e.test_approval_flow import PINNED, awaiting, start
from tests.services.guard.test_service import AWS

DECISIONS = "/v1/policy/decisions"
LEAKY = [ContextFile(path=".env", content=f"AWS_ACCESS_KEY_ID={AWS}\n")]


@pytest.fixture
async def secured(settings: Settings) -> AsyncIterator[Secured]:
    async with AsyncExitStack() as stack:
        mesh = await start(settings.with_(auth=True, tally_s=0.3), stack)
        http = await stack.enter_async_context(aiohttp.ClientSession())
        yield Secured(mesh, TokenStore(mesh.bus), http)


async def decided(secured: Secured, *requests: TaskRequest) -> None:
    """Submit each request and wait until the guard decided it: it ran, was rejected or awaits approval."""
    client = secured.mesh.client
    for request in requests:
        await client.submit(request)
        if request.data_region == PINNED:
            await awaiting(client, request.id)
        else:
            assert (await client.wait(request.id, timeout=30)).state in ("succeeded", "rejected")


async def counted(secured: Secured, token: str, query: str, verdicts: dict[str, int]) -> dict[str, Any]:
    """The route's answer once its window's verdicts are `verdicts` (the guard publishes every 0.3 s)."""
    async with asyncio.timeout(10):
        while True:
            status, body, _ = await secured.call("GET", f"{DECISIONS}?{query}", token)
            assert status == 200, body
            if body["verdicts"] == verdicts:
                return body
            await asyncio.sleep(0.1)


async def test_decisions_are_counted_per_verdict_and_rule_and_a_tenant_sees_its_own(secured: Secured) -> None:
    def planner(task_id: str, tenant: str, **more: Any) -> TaskRequest:
        return TaskRequest(id=task_id, tenant=tenant, role="planner", prompt="Plan a CLI", **more)

    await decided(
        secured,
        planner("a-1", "acme"),
        planner("a-2", "acme"),
        planner("a-leak", "acme", context=LEAKY),
        planner("g-leak", "globex", context=LEAKY),
        planner("g-pinned", "globex", data_region=PINNED),
    )
    operator = await secured.token("*", "read", subject="ops")
    everything = await counted(secured, operator, "since=1h", {"allow": 2, "approve": 1, "deny": 2})
    assert everything["rules"] == {"credentials.aws-access-key": 2, "residency.unknown-location": 1}
    assert everything["step_s"] == 60.0  # an hour over 60 points
    assert everything["partial"] is False
    # The points hold what the window holds, in steps oldest first.
    points = everything["points"]
    assert [p["at"] for p in points] == sorted(p["at"] for p in points) and len(points) == 60
    summed: dict[str, int] = {}
    for point in points:
        for verdict, n in point["verdicts"].items():
            summed[verdict] = summed.get(verdict, 0) + n
    assert summed == everything["verdicts"]

    acme_reader = await secured.token("acme", "read")
    status, acme, _ = await secured.call("GET", f"{DECISIONS}?since=1h", acme_reader)
    assert status == 200
    assert (acme["verdicts"], acme["rules"]) == ({"allow": 2, "deny": 1}, {"credentials.aws-access-key": 1})
    status, body, _ = await secured.call("GET", f"{DECISIONS}?since=1h&tenant=globex", acme_reader)
    assert (status, body["field"]) == (403, "tenant")

    status, globex, _ = await secured.call("GET", f"{DECISIONS}?since=1h&tenant=globex", operator)
    assert status == 200
    assert (globex["verdicts"], globex["rules"]) == (
        {"approve": 1, "deny": 1},
        {"credentials.aws-access-key": 1, "residency.unknown-location": 1},
    )


async def test_the_route_needs_a_token_with_read_and_a_valid_since(secured: Secured) -> None:
    status, _, resp = await secured.call("GET", DECISIONS, None)
    assert status == 401 and resp.headers["WWW-Authenticate"].startswith("Bearer")
    submitter = await secured.token("acme", "submit")
    status, body, _ = await secured.call("GET", DECISIONS, submitter)
    assert (status, body["scope"]) == (403, "read")
    reader = await secured.token("acme", "read")
    status, body, _ = await secured.call("GET", f"{DECISIONS}?since=last-week", reader)
    assert (status, body["field"]) == (400, "since")
    # Nothing decided yet: an empty window, every point empty.
    status, body, _ = await secured.call("GET", f"{DECISIONS}?since=10m&step=5m", reader)
    assert status == 200
    assert (body["verdicts"], body["rules"], len(body["points"])) == ({}, {}, 2)
