"""The API says which roles no running agent serves: in /readyz, and in a warning when a task is submitted."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from maestro.bus import Bus
from maestro.presence import announcing
from maestro.settings import Settings
from proto.v1.ids import ROLES
from tests.services.orchestrator.api_client import Api
from tests.services.orchestrator.support import orchestrator


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    async with orchestrator(settings) as port, aiohttp.ClientSession() as http:
        yield Api(http, f"http://127.0.0.1:{port}")


async def test_readyz_lists_the_roles_without_a_worker_and_stays_200(api: Api, bus: Bus) -> None:
    assert await api.call("GET", "/readyz") == (
        200,
        {"status": "ready", "roles_without_worker": list(ROLES)},
    )
    async with announcing(bus, ["tester", "reviewer"], "w-1"):
        status, answer = await api.call("GET", "/readyz")
        assert (status, answer["roles_without_worker"]) == (
            200,
            ["planner", "scaffolder", "implementer", "doc-writer"],
        )
    status, answer = await api.call("GET", "/readyz")
    assert (status, answer["roles_without_worker"]) == (200, list(ROLES))


async def test_a_task_for_a_role_no_agent_serves_is_accepted_with_a_warning(
    bus: Bus, settings: Settings
) -> None:
    async with (
        announcing(bus, ["tester"], "w-1"),
        orchestrator(settings) as port,
        aiohttp.ClientSession() as http,
    ):
        api = Api(http, f"http://127.0.0.1:{port}")
        body = {"id": "t-orphan", "tenant": "acme", "role": "planner", "prompt": "p"}
        status, answer = await api.call("POST", "/v1/tasks", json=body)
        assert (status, answer["id"], answer["tenant"]) == (202, "t-orphan", "acme")
        assert "no running agent serves the planner role" in answer["warning"]
        assert "budget" in answer["warning"]
        served = {"id": "t-served", "tenant": "acme", "role": "tester", "prompt": "p"}
        assert await api.call("POST", "/v1/tasks", json=served) == (202, {"id": "t-served", "tenant": "acme"})
