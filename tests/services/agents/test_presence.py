"""An agent is announced for its roles exactly while it serves them, so a role nobody serves can be named."""

from __future__ import annotations

from maestro import presence
from maestro.bus import Bus
from maestro.runtime import running_service
from maestro.settings import Settings
from proto.v1 import ROLES
from services.agents.service import SERVICE as AGENTS
from tests.maestro.test_presence import eventually


async def served_becomes(bus: Bus, expected: set[str], within: float = 15.0) -> None:
    # The bucket is listed, not watched (presence.py says why): poll the listing.
    async def served() -> bool:
        return await presence.roles_with_worker(bus) == expected

    await eventually(served, within)


async def test_an_agent_is_announced_for_its_roles_while_it_runs_and_withdrawn_when_it_stops(
    bus: Bus, settings: Settings
) -> None:
    assert await presence.roles_without_worker(bus, ROLES) == list(ROLES)
    async with running_service(AGENTS, settings.with_(roles=("planner", "tester"))):
        await served_becomes(bus, {"planner", "tester"})
        missing = await presence.roles_without_worker(bus, ROLES)
        assert missing == [r for r in ROLES if r not in ("planner", "tester")]
    await served_becomes(bus, set())
