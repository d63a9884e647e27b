"""The API with tokens on a running mesh: one tenant's token can neither read nor touch another's tasks.

Two tenants, acme and globex, each with tasks that really ran (or wait for a human); every route is called
with acme's tokens against globex's things and must answer as if they did not exist.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import msgspec
import pytest

from maestro import claims, history
from maestro.access.grants import Minted, mint
from maestro.access.token_store import TokenStore
from maestro.settings import Settings
from proto.v1 import Queued, Rejected, TaskRequest
from proto.v1.access import Scope
from tests.e2e.test_approval_flow import Mesh, awaiting, parked_task, start

WORKFLOW: dict[str, Any] = {
    "id": "wf-globex",
    "tenant": "globex",
    "steps": [{"name": "plan", "role": "planner", "prompt": "Plan a CLI"}],
}


@dataclass
class Secured:
    """A mesh whose API asks for tokens, a way to make them, and an HTTP session to call it."""

    mesh: Mesh
    tokens: TokenStore
    http: aiohttp.ClientSession

    async def token(self, tenant: str, *scopes: Scope, subject: str = "alice@acme") -> str:
        minted = mint(tenant=tenant, scopes=scopes, subject=subject, now=datetime.now(UTC))
        await self.tokens.add(minted)
        return minted.token

    async def call(
        self, method: str, path: str, token: str | None, body: object = None
    ) -> tuple[int, Any, aiohttp.ClientResponse]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        url = f"http://127.0.0.1:{self.mesh.port}{path}"
        async with self.http.request(method, url, json=body, headers=headers) as resp:
            return resp.status, await resp.json(), resp


@pytest.fixture
async def secured(settings: Settings) -> AsyncIterator[Secured]:
    async with AsyncExitStack() as stack:
        mesh = await start(settings.with_(auth=True), stack)
        http = await stack.enter_async_context(aiohttp.ClientSession())
        yield Secured(mesh, TokenStore(mesh.bus), http)


async def ran(secured: Secured, task_id: str, tenant: str) -> None:
    await secured.mesh.client.submit(TaskRequest(id=task_id, tenant=tenant, role="planner", prompt="Plan"))
    record = await secured.mesh.client.wait(task_id, timeout=30)
    assert record.state == "succeeded"


ROUTES = [
    ("POST", "/v1/tasks"),
    ("GET", "/v1/tasks"),
    ("GET", "/v1/tasks/t-1"),
    ("GET", "/v1/tasks/t-1/events"),
    ("POST", "/v1/tasks/t-1/approve"),
    ("POST", "/v1/tasks/t-1/reject"),
    ("POST", "/v1/tasks/t-1/cancel"),
    ("POST", "/v1/workflows"),
    ("GET", "/v1/workflows"),
    ("GET", "/v1/workflows/wf-1"),
    ("POST", "/v1/workflows/wf-1/cancel"),
]


async def test_every_route_asks_for_a_valid_token_and_the_probes_stay_open(secured: Secured) -> None:
    for method, path in ROUTES:
        for token in (None, "mst_0123456789abcdef_" + "x" * 43, "not-a-token"):
            status, body, resp = await secured.call(method, path, token, body={})
            assert status == 401, (method, path, token, body)
            challenge = resp.headers["WWW-Authenticate"]
            assert challenge.startswith('Bearer realm="maestro"')
            assert ('error="invalid_token"' in challenge) == (token is not None)
    for path in ("/healthz", "/readyz", "/"):
        status, _, _ = await secured.call("GET", path, None)
        assert status == 200, path
    async with secured.http.get(f"http://127.0.0.1:{secured.mesh.port}/metrics") as resp:
        exposed = await resp.text()
    calls = len(ROUTES)
    assert f'maestro_api_unauthenticated_total{{reason="none"}} {calls}.0' in exposed
    assert f'maestro_api_unauthenticated_total{{reason="invalid"}} {2 * calls}.0' in exposed


async def test_a_tenant_reads_its_own_tasks_and_another_tenants_do_not_exist(secured: Secured) -> None:
    await ran(secured, "t-acme", "acme")
    await ran(secured, "t-globex", "globex")
    reader = await secured.token("acme", "read")

    status, record, _ = await secured.call("GET", "/v1/tasks/t-acme", reader)
    assert (status, record["tenant"], record["state"]) == (200, "acme", "succeeded")
    status, events, _ = await secured.call("GET", "/v1/tasks/t-acme/events", reader)
    assert status == 200 and {e["tenant"] for e in events} == {"acme"}

    # Another tenant's task answers exactly as a task that does not exist.
    for path in ("/v1/tasks/{}", "/v1/tasks/{}/events", "/v1/tasks/{}/events?follow=1"):
        theirs = await secured.call("GET", path.format("t-globex"), reader)
        missing = await secured.call("GET", path.format("t-nobody"), reader)
        assert theirs[0] == missing[0] == 404, path
        assert theirs[1]["error"].replace("t-globex", "ID") == missing[1]["error"].replace("t-nobody", "ID")

    status, page, _ = await secured.call("GET", "/v1/tasks", reader)
    assert status == 200 and [t["id"] for t in page["items"]] == ["t-acme"]
    status, body, _ = await secured.call("GET", "/v1/tasks?tenant=globex", reader)
    assert (status, body["field"]) == (403, "tenant")

    operator = await secured.token("*", "read", subject="ops")
    status, page, _ = await secured.call("GET", "/v1/tasks", operator)
    assert status == 200 and {t["id"] for t in page["items"]} == {"t-acme", "t-globex"}


async def test_a_tenant_cannot_submit_for_another_nor_without_the_scope(secured: Secured) -> None:
    submitter = await secured.token("acme", "submit")
    reader = await secured.token("acme", "read")
    theirs = {"id": "t-forged", "tenant": "globex", "role": "planner", "prompt": "p"}
    status, body, _ = await secured.call("POST", "/v1/tasks", submitter, theirs)
    assert (status, body["scope"]) == (403, "submit")
    status, body, _ = await secured.call("POST", "/v1/tasks", reader, {**theirs, "tenant": "acme"})
    assert (status, body["scope"]) == (403, "submit")
    assert await claims.owner_of(secured.mesh.bus, "t-forged") is None

    status, body, _ = await secured.call(
        "POST", "/v1/tasks", submitter, {**theirs, "id": "t-mine", "tenant": "acme"}
    )
    assert (status, body) == (202, {"id": "t-mine", "tenant": "acme"})
    assert (await secured.mesh.client.wait("t-mine", timeout=30)).state == "succeeded"


async def test_approving_needs_the_scope_in_the_tasks_tenant_and_records_the_tokens_subject(
    secured: Secured,
) -> None:
    await parked_task(secured.mesh.client, "t-globex-parked", tenant="globex")
    await parked_task(secured.mesh.client, "t-acme-parked", tenant="acme")
    approver = await secured.token("acme", "approve", subject="alice@acme")
    reader = await secured.token("acme", "read")

    status, _, _ = await secured.call("POST", "/v1/tasks/t-globex-parked/approve", approver, {})
    assert status == 404
    status, _, _ = await secured.call("POST", "/v1/tasks/t-globex-parked/reject", approver, {"reason": "no"})
    assert status == 404
    status, body, _ = await secured.call("POST", "/v1/tasks/t-acme-parked/approve", reader, {})
    assert (status, body["scope"]) == (403, "approve")
    # `by` is who the token says, never what the body claims.
    status, body, _ = await secured.call(
        "POST", "/v1/tasks/t-acme-parked/approve", approver, {"by": "mallory"}
    )
    assert (status, body["field"]) == (403, "$.by")

    status, body, _ = await secured.call(
        "POST", "/v1/tasks/t-acme-parked/approve", approver, {"reason": "ok"}
    )
    assert (status, body["by"]) == (202, "alice@acme")
    record = await secured.mesh.client.wait("t-acme-parked", timeout=30)
    assert (record.state, record.approved_by) == ("succeeded", "alice@acme")
    events = await history.read_events(secured.mesh.bus.js, "t-acme-parked")
    assert [e.approved_by for e in events if isinstance(e, Queued)] == ["alice@acme"]

    # globex's task still waits: nothing acme did reached it.
    assert (await awaiting(secured.mesh.client, "t-globex-parked")).state == "awaiting_approval"


async def test_a_tenant_cannot_cancel_nor_read_another_tenants_workflow(secured: Secured) -> None:
    operator = await secured.token("*", "admin", subject="ops")
    acme = await secured.token("acme", "admin")
    status, _, _ = await secured.call("POST", "/v1/workflows", operator, WORKFLOW)
    assert status == 202
    await secured.mesh.client.wait_workflow("wf-globex", timeout=60)

    for method, path in (("GET", "/v1/workflows/wf-globex"), ("POST", "/v1/workflows/wf-globex/cancel")):
        status, _, _ = await secured.call(method, path, acme, {})
        assert status == 404, path
    status, page, _ = await secured.call("GET", "/v1/workflows", acme)
    assert (status, page["items"]) == (200, [])
    status, body, _ = await secured.call("POST", "/v1/workflows", acme, WORKFLOW | {"id": "wf-2"})
    assert status == 403 and body["scope"] == "submit"
    status, record, _ = await secured.call("GET", "/v1/workflows/wf-globex", operator)
    assert (status, record["state"]) == (200, "succeeded")


async def test_a_revoked_token_stops_at_once_and_an_expired_one_is_refused(secured: Secured) -> None:
    await ran(secured, "t-acme", "acme")
    reader = await secured.token("acme", "read")
    assert (await secured.call("GET", "/v1/tasks/t-acme", reader))[0] == 200

    revoked = await secured.tokens.revoke(reader.split("_")[1])
    assert revoked is not None
    assert (await secured.call("GET", "/v1/tasks/t-acme", reader))[0] == 401

    minted = mint(tenant="acme", scopes=["read"], subject="bob", now=datetime.now(UTC) - timedelta(hours=2))
    expired = msgspec.structs.replace(minted.grant, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    await secured.tokens.add(Minted(minted.token, expired))
    assert (await secured.call("GET", "/v1/tasks/t-acme", minted.token))[0] == 401

    # The same secret under another id, or another secret under this id, opens nothing.
    other = await secured.token("acme", "read")
    forged = f"mst_{other.split('_')[1]}_{minted.token.split('_', 2)[2]}"
    assert (await secured.call("GET", "/v1/tasks/t-acme", forged))[0] == 401


async def test_no_token_is_ever_logged(secured: Secured, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    await ran(secured, "t-acme", "acme")
    good = await secured.token("acme", "read")
    bad = good[:-4] + "AAAA"
    for token in (good, bad):
        await secured.call("GET", "/v1/tasks/t-acme", token)
    assert any("refused GET /v1/tasks/t-acme" in r.getMessage() for r in caplog.records)
    secret = good.split("_", 2)[2]
    assert not [r for r in caplog.records if secret[:20] in r.getMessage() or bad[-30:] in r.getMessage()]


async def test_a_rejection_names_the_tokens_subject(secured: Secured) -> None:
    await parked_task(secured.mesh.client, "t-decided", tenant="acme")
    approver = await secured.token("acme", "approve", subject="carol@acme")
    status, _, _ = await secured.call("POST", "/v1/tasks/t-decided/reject", approver, {"reason": "not now"})
    assert status == 202
    record = await secured.mesh.client.wait("t-decided", timeout=30)
    assert (record.state, record.rejected_by) == ("rejected", "carol@acme")
    rejections = [
        e for e in await history.read_events(secured.mesh.bus.js, "t-decided") if isinstance(e, Rejected)
    ]
    assert [(e.by, e.reason) for e in rejections] == [("carol@acme", "rejected by carol@acme: not now")]
