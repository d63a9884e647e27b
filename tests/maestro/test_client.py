"""The SDK's submit on a real nats-server: one id is one task, and a conflict is an error, never silence."""

from __future__ import annotations

import pytest

from maestro import topics
from maestro.bus import Bus
from maestro.claims import IdConflict
from maestro.client import open_client
from maestro.settings import Settings
from proto.v1 import TaskRequest


def plan(task_id: str, tenant: str = "acme", prompt: str = "Plan a CLI") -> TaskRequest:
    return TaskRequest(id=task_id, tenant=tenant, role="planner", prompt=prompt)


async def test_a_conflicting_submission_inside_the_duplicate_window_raises(
    bus: Bus, settings: Settings
) -> None:
    async with open_client(settings) as client:
        assert await client.submit(plan("sdk-1")) == "sdk-1"
        assert await client.submit(plan("sdk-1")) == "sdk-1"  # the same request again: the same task
        with pytest.raises(IdConflict, match="belongs to another tenant's task"):
            await client.submit(plan("sdk-1", tenant="globex"))
        with pytest.raises(IdConflict, match="other content"):
            await client.submit(plan("sdk-1", prompt="Plan something else"))
    stored = await bus.js.stream_info(topics.STREAM_REQUESTS)
    assert stored.state.messages == 1
