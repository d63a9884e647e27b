"""`maestro ls` says why queued tasks wait: while no orchestrator replica leads (nobody answers for the
dispatcher), that they wait for one to take the lead, rather than failing the listing."""

from __future__ import annotations

from datetime import UTC, datetime

from maestro import topics
from maestro.bus import Bus
from maestro.client import Client
from proto.v1 import TaskRecord
from services.orchestrator.cli import _waits

T0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


async def test_queued_tasks_wait_for_a_leader_while_no_dispatcher_answers(bus: Bus) -> None:
    client = Client(bus, await bus.js.key_value(topics.BUCKET_TASKS))
    queued = TaskRecord(id="t-1", tenant="acme", state="queued", created_at=T0, updated_at=T0, role="planner")
    running = TaskRecord(id="t-2", tenant="acme", state="running", created_at=T0, updated_at=T0)
    reasons = await _waits(client, [queued, running])
    assert list(reasons) == ["t-1"]
    assert "an orchestrator replica takes the lead" in reasons["t-1"]
