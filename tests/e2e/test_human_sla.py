"""SLAs of human tasks on a real mesh: a breach escalates once (an event, a signed webhook retried until
delivered), widening the queue or failing the task as its policy says."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from maestro.access.grants import Caller
from maestro.client import Client
from maestro.desk.desk import Desk, DeskError
from maestro.desk.people import PeopleStore
from maestro.http import serving_http
from maestro.settings import Settings
from proto.v1 import Escalated, TaskRequest
from proto.v1.humans import HumanWork, Person
from services.orchestrator.notifier import DELIVERY_HEADER, SIGNATURE_HEADER, signature
from tests.e2e.conftest import in_state, open_mesh

SECRET = b"s3cret-for-webhooks"


@dataclass
class Hook:
    """A chat tool's webhook: refuses the first `failing` posts (503), then takes each one."""

    failing: int = 2
    tries: list[str] = field(default_factory=list)
    taken: list[dict[str, object]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        assert request.headers[SIGNATURE_HEADER] == signature(SECRET, body)
        self.tries.append(request.headers[DELIVERY_HEADER])
        if len(self.tries) <= self.failing:
            return web.json_response({"error": "busy"}, status=503)
        self.taken.append(json.loads(body))
        self.arrived.set()
        return web.json_response({"ok": True})


@pytest.fixture
async def hooked(settings: Settings, tmp_path: Path) -> AsyncIterator[tuple[Client, Hook]]:
    hook = Hook()
    secret = tmp_path / "notify.secret"
    secret.write_bytes(SECRET + b"\n")
    async with AsyncExitStack() as stack:
        port = await stack.enter_async_context(
            serving_http("127.0.0.1", 0, [web.post("/hook", hook.receive)])
        )
        wired = settings.with_(
            notify_webhook_url=f"http://127.0.0.1:{port}/hook", notify_secret_file=str(secret)
        )
        yield await open_mesh(wired, stack), hook


async def escalations(client: Client, task_id: str) -> list[Escalated]:
    return [e for e in await client.events(task_id) if isinstance(e, Escalated)]


async def test_a_task_nobody_claims_in_time_escalates_once_to_the_next_tier(
    hooked: tuple[Client, Hook],
) -> None:
    mesh, hook = hooked
    people, desk = PeopleStore(mesh.bus), Desk(mesh.bus, PeopleStore(mesh.bus))
    await people.put(Person(id="lee@acme", skills=["leads"]))
    lee = Caller("lee@acme", "acme", frozenset({"work"}))
    sla = HumanWork(time_to_claim_s=1, on_breach="widen", escalate_to="leads")
    await mesh.submit(
        TaskRequest(id="sla-1", tenant="acme", role="human:security", prompt="Sign off", human=sla)
    )
    await in_state(mesh, "sla-1", "queued")
    with pytest.raises(DeskError, match="does not serve the security queue"):
        await desk.claim(lee, "sla-1")  # not yet: the next tier sees it only once it is escalated

    async with asyncio.timeout(30):
        await hook.arrived.wait()
    (notice,) = hook.taken
    assert (notice["task_id"], notice["sla"], notice["action"], notice["to"]) == (
        "sla-1",
        "claim",
        "widen",
        "leads",
    )
    assert len(hook.tries) == 3 and len(set(hook.tries)) == 1  # retried, one delivery id
    (escalated,) = await escalations(mesh, "sla-1")
    assert escalated.reason == "not claimed within 1s of being queued"
    record = await in_state(mesh, "sla-1", "queued")
    assert record.escalations == ["claim"] and record.widened_to == ["leads"]
    assert [r.id for r in await desk.inbox(lee)] == ["sla-1"]
    await desk.claim(lee, "sla-1")
    await desk.complete(lee, "sla-1", {"approved": True})
    await in_state(mesh, "sla-1", "succeeded")
    assert len(await escalations(mesh, "sla-1")) == 1 and len(hook.taken) == 1


async def test_a_claim_not_completed_in_time_fails_the_task_when_its_policy_says_so(
    hooked: tuple[Client, Hook],
) -> None:
    mesh, hook = hooked
    hook.failing = 0
    people, desk = PeopleStore(mesh.bus), Desk(mesh.bus, PeopleStore(mesh.bus))
    await people.put(Person(id="kim@acme", skills=["ops"]))
    kim = Caller("kim@acme", "acme", frozenset({"work"}))
    sla = HumanWork(time_to_complete_s=1, on_breach="fail")
    await mesh.submit(
        TaskRequest(id="sla-2", tenant="acme", role="human:ops", prompt="Restart db", human=sla)
    )
    await in_state(mesh, "sla-2", "queued")
    await desk.claim(kim, "sla-2")
    failed = await in_state(mesh, "sla-2", "failed", within=30)
    assert failed.error == "not completed within 1s of being claimed by kim@acme"
    with pytest.raises(DeskError, match="has ended") as refused:
        await desk.complete(kim, "sla-2", {"approved": True})
    assert refused.value.status == 409
    (escalated,) = await escalations(mesh, "sla-2")
    assert (escalated.sla, escalated.action) == ("complete", "fail")
    async with asyncio.timeout(10):
        await hook.arrived.wait()
    assert [n["held_by"] for n in hook.taken] == ["kim@acme"]
