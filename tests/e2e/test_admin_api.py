"""The admin routes on a running mesh with tokens: budgets, the policy bundle and tokens over HTTP.

An operator (tenant *, scope admin) does what `maestro budget set`, `maestro policy push` and `maestro token`
do; a tenant's admin manages its own tenant's tokens and nothing of anyone else's, and changes no budget.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from maestro.access.token_store import TokenStore
from maestro.client import open_client
from maestro.policy.bundle import load_default
from maestro.runtime import running_service
from maestro.settings import Settings
from proto.v1 import TaskRequest
from services.agents.service import SERVICE as AGENTS
from tests.e2e.conftest import wait_for_budget
from tests.e2e.test_api_access import Secured
from tests.e2e.test_approval_flow import Mesh
from tests.services.guard.support import running_guard
from tests.services.orchestrator.support import orchestrator

# Every request acme sends is larger than 16 bytes: the guard denies it unread (limits.request-too-large).
TINY_REQUESTS = b"max_request_bytes: 16\n"
WHOLE = b"""\
version: whole-1   # pushed over HTTP
default:
  approval_timeout_s: 60
"""
BROKEN = b"""\
version: broken-1
default:
  budget: {action: explode}
"""


@dataclass
class Admin:
    """A secured mesh whose guard's metrics the test reads (to know which bundle it judges by)."""

    secured: Secured
    guard: CollectorRegistry

    async def push(
        self, token: str, text: bytes, query: str = "", content_type: str = "application/yaml"
    ) -> Any:
        url = f"http://127.0.0.1:{self.secured.mesh.port}/v1/policy{query}"
        headers = {"Authorization": f"Bearer {token}", "Content-Type": content_type}
        async with self.secured.http.put(url, data=text, headers=headers) as resp:
            return resp.status, await resp.json()


@pytest.fixture
async def admin(settings: Settings) -> AsyncIterator[Admin]:
    settings = settings.with_(auth=True)
    async with AsyncExitStack() as stack:
        registry = await stack.enter_async_context(running_guard(settings))
        await stack.enter_async_context(running_service(AGENTS, settings))
        port = await stack.enter_async_context(orchestrator(settings))
        client = await stack.enter_async_context(open_client(settings))
        await wait_for_budget(client)
        http = await stack.enter_async_context(aiohttp.ClientSession())
        yield Admin(Secured(Mesh(client, port), TokenStore(client.bus), http), registry)


def judging_by(registry: CollectorRegistry, version: str, hash_: str) -> Callable[[], bool]:
    labels = {"version": version, "hash": hash_}
    return lambda: registry.get_sample_value("maestro_guard_policy_bundle_info", labels) == 1


async def until(condition: Callable[[], bool], within: float = 10.0) -> None:
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 - a metric has no event to wait on
            await asyncio.sleep(0.01)


async def test_an_operator_sets_a_budget_that_budget_show_then_shows(admin: Admin) -> None:
    s = admin.secured
    operator = await s.token("*", "admin", subject="ops")

    change = {"limit_micro_usd": 7_000_000, "window": "daily"}
    status, view, _ = await s.call("PUT", "/v1/budgets/acme", operator, change)
    assert (status, view["tenant"], view["limit_micro_usd"], view["window"]) == (
        200,
        "acme",
        7_000_000,
        "daily",
    )
    ledger = await s.mesh.client.ledger("acme")  # what `maestro budget show acme` prints
    assert (ledger.limit_micro_usd, ledger.window) == (7_000_000, "daily")
    status, shown, _ = await s.call("GET", "/v1/budgets/acme", operator)
    assert (status, shown["limit_micro_usd"], shown["remaining_micro_usd"]) == (200, 7_000_000, 7_000_000)

    # A body may repeat the path's tenant, and sets a role's sub-limit as `budget set --role` does.
    change = {
        "tenant": "acme",
        "scope": "role",
        "name": "tester",
        "limit_micro_usd": 2_000,
    }
    status, view, _ = await s.call("PUT", "/v1/budgets/acme", operator, change)
    assert (status, view["roles"]["tester"]["limit_micro_usd"]) == (200, 2_000)
    ledger = await s.mesh.client.ledger("acme")
    assert (ledger.limit_micro_usd, ledger.roles["tester"].limit_micro_usd) == (7_000_000, 2_000)

    # Refused, naming the field, and nothing changes.
    for body, field in (
        ({"tenant": "globex", "limit_micro_usd": 1}, "$.tenant"),
        ({"limit_usd": 1}, "$.limit_usd"),
        ({"limit_micro_usd": -5}, "$.limit_micro_usd"),
        ({"window": "weekly"}, "$.window"),
        ([1, 2], "$"),
    ):
        status, answer, _ = await s.call("PUT", "/v1/budgets/acme", operator, body)
        assert (status, answer["field"]) == (400, field), body
    # The budget service's own refusal (a role that does not exist) keeps its 400.
    status, answer, _ = await s.call(
        "PUT", "/v1/budgets/acme", operator, {"scope": "role", "name": "juggler", "limit_micro_usd": 1}
    )
    assert status == 400 and "juggler" in answer["error"]
    assert (await s.mesh.client.ledger("acme")) == ledger


async def test_a_tenant_cannot_change_budgets_nor_read_another_tenants(admin: Admin) -> None:
    s = admin.secured
    operator = await s.token("*", "admin", subject="ops")
    await s.call("PUT", "/v1/budgets/acme", operator, {"limit_micro_usd": 5_000_000})
    await s.call("PUT", "/v1/budgets/globex", operator, {"limit_micro_usd": 6_000_000})
    acme_admin = await s.token("acme", "admin")
    reader = await s.token("acme", "read")
    submitter = await s.token("acme", "submit")

    status, body, _ = await s.call("PUT", "/v1/budgets/acme", acme_admin, {"limit_micro_usd": 10**12})
    assert (status, body["scope"]) == (403, "admin")
    assert "a tenant's admin" in body["error"] and "operator" in body["error"]
    status, _, _ = await s.call("PUT", "/v1/budgets/acme", reader, {"limit_micro_usd": 10**12})
    assert status == 403
    # globex's budget does not exist for acme's tokens, whatever their scope.
    for token in (acme_admin, reader):
        for method in ("GET", "PUT"):
            status, body, _ = await s.call(method, "/v1/budgets/globex", token, {"limit_micro_usd": 0})
            assert (status, body["error"]) == (404, "no budget for tenant globex"), (method, token)

    status, view, _ = await s.call("GET", "/v1/budgets/acme", reader)
    assert (status, view["limit_micro_usd"]) == (200, 5_000_000)
    status, body, _ = await s.call("GET", "/v1/budgets/acme", submitter)
    assert (status, body["scope"]) == (403, "read")
    status, body, _ = await s.call("GET", "/v1/budgets/Acme!", operator)
    assert (status, body["field"]) == (400, "tenant")
    assert (await s.mesh.client.ledger("acme")).limit_micro_usd == 5_000_000
    assert (await s.mesh.client.ledger("globex")).limit_micro_usd == 6_000_000


async def test_a_bundle_pushed_over_http_judges_the_next_task_and_a_broken_one_changes_nothing(
    admin: Admin,
) -> None:
    s = admin.secured
    operator = await s.token("*", "admin", subject="ops")
    shipped = load_default()
    status, policy, _ = await s.call("GET", "/v1/policy", operator)
    assert (status, policy["source"], policy["version"], policy["hash"]) == (
        200,
        "shipped",
        shipped.version,
        shipped.hash,
    )
    assert f"version: {shipped.version}" in policy["yaml"] and policy["pushed_by"] is None

    status, pushed = await admin.push(operator, TINY_REQUESTS, "?tenant=acme")
    assert (status, pushed["source"], pushed["pushed_by"], pushed["tenants"]) == (
        200,
        "pushed",
        "ops",
        ["acme"],
    )
    assert (
        pushed["version"].startswith(f"{shipped.version}+acme.") and "max_request_bytes: 16" in pushed["yaml"]
    )
    await until(judging_by(admin.guard, pushed["version"], pushed["hash"]))
    await s.mesh.client.submit(TaskRequest(id="t-acme", tenant="acme", role="planner", prompt="Plan"))
    await s.mesh.client.submit(TaskRequest(id="t-globex", tenant="globex", role="planner", prompt="Plan"))
    denied = await s.mesh.client.wait("t-acme", timeout=30)
    assert (denied.state, denied.violations) == ("rejected", ["limits.request-too-large"])
    assert (await s.mesh.client.wait("t-globex", timeout=30)).state == "succeeded"

    # A broken bundle: 400 with each problem's line and path, and the bundle in force stays.
    status, refused = await admin.push(operator, BROKEN)
    assert status == 400
    (problem,) = refused["problems"]
    assert (problem["line"], problem["path"]) == (3, "$.default.budget.action")
    assert "explode" in problem["message"]
    for text, query, content_type, code in (
        (TINY_REQUESTS, "?tenat=acme", "application/yaml", 400),  # misspelt: not a whole-bundle push
        (b"version: v\n", "", "application/json", 415),
        (TINY_REQUESTS, "?tenant=Acme!", "text/plain", 400),
        (b"#" * (s.mesh.bus.settings.max_request_bytes + 1), "", "text/plain", 413),
    ):
        assert (await admin.push(operator, text, query, content_type))[0] == code, query
    status, still, _ = await s.call("GET", "/v1/policy", operator)
    assert (status, still["revision"], still["hash"]) == (200, pushed["revision"], pushed["hash"])

    # Only an operator reads, pushes or resets the bundle every tenant is judged by.
    acme_admin = await s.token("acme", "admin")
    assert (await admin.push(acme_admin, b"max_request_bytes: 999999\n", "?tenant=acme"))[0] == 403
    for method in ("GET", "DELETE"):
        status, body, _ = await s.call(method, "/v1/policy", acme_admin)
        assert (status, body["scope"]) == (403, "admin"), method
    assert (await s.call("GET", "/v1/policy", operator))[1]["revision"] == pushed["revision"]

    # A whole bundle replaces the one in force, tenants' overrides included.
    status, whole = await admin.push(operator, WHOLE, content_type="text/plain; charset=utf-8")
    assert (status, whole["version"], whole["tenants"], whole["yaml"]) == (200, "whole-1", [], WHOLE.decode())
    await until(judging_by(admin.guard, "whole-1", whole["hash"]))

    status, reset, _ = await s.call("DELETE", "/v1/policy", operator)
    assert (status, reset["source"], reset["hash"], reset["pushed_by"]) == (
        200,
        "shipped",
        shipped.hash,
        "ops",
    )
    await until(judging_by(admin.guard, shipped.version, shipped.hash))


async def test_tokens_made_over_http_work_at_once_and_stop_once_revoked(
    admin: Admin, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    s = admin.secured
    operator = await s.token("*", "admin", subject="ops")
    status, issued, _ = await s.call(
        "POST", "/v1/tokens", operator, {"tenant": "globex", "scopes": ["read"], "subject": "bot@globex"}
    )
    assert status == 201 and set(issued) == {"token", "grant"}
    grant = issued["grant"]
    assert (grant["tenant"], grant["scopes"], grant["subject"], grant["created_by"]) == (
        "globex",
        ["read"],
        "bot@globex",
        "ops",
    )
    assert "digest" not in grant
    globex_reader = issued["token"]
    assert (await s.call("GET", "/v1/tasks", globex_reader))[0] == 200

    # A tenant's admin makes its own tenant's tokens, never another's nor every tenant's.
    acme_admin = await s.token("acme", "admin", subject="alice@acme")
    for tenant in ("globex", "*"):
        status, body, _ = await s.call(
            "POST", "/v1/tokens", acme_admin, {"tenant": tenant, "scopes": ["read"]}
        )
        assert (status, body["field"]) == (403, "$.tenant"), tenant
    status, issued, _ = await s.call(
        "POST", "/v1/tokens", acme_admin, {"tenant": "acme", "scopes": ["submit"]}
    )
    assert (status, issued["grant"]["subject"], issued["grant"]["created_by"]) == (
        201,
        "alice@acme",
        "alice@acme",
    )
    acme_submitter = issued["token"]
    task = {"id": "t-made", "tenant": "acme", "role": "planner", "prompt": "Plan"}
    assert (await s.call("POST", "/v1/tasks", acme_submitter, task))[0] == 202
    status, body, _ = await s.call(
        "POST", "/v1/tokens", acme_submitter, {"tenant": "acme", "scopes": ["read"]}
    )
    assert (status, body["scope"]) == (403, "admin")

    # Bodies are checked strictly, naming the field.
    later = (datetime.now(UTC) + timedelta(hours=1)).replace(tzinfo=None).isoformat()
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    for body, field in (
        ({"tenant": "acme", "scopes": ["read"], "scope": "read"}, "$.scope"),
        ({"tenant": "acme", "scopes": []}, "$.scopes"),
        ({"tenant": "acme", "scopes": ["root"]}, "$.scopes[0]"),
        ({"tenant": "acme", "scopes": ["read"], "expires_at": later}, "$.expires_at"),  # no offset
        ({"tenant": "acme", "scopes": ["read"], "expires_at": past}, "$.expires_at"),
    ):
        status, answer, _ = await s.call("POST", "/v1/tokens", acme_admin, body)
        assert (status, answer["field"]) == (400, field), body

    # Listed without digests: a tenant's admin its own tenant's, an operator every one.
    status, mine, _ = await s.call("GET", "/v1/tokens", acme_admin)
    assert status == 200 and {g["tenant"] for g in mine} == {"acme"} and len(mine) == 2
    status, every, _ = await s.call("GET", "/v1/tokens", operator)
    assert status == 200 and {g["tenant"] for g in every} == {"acme", "globex", "*"}
    assert not [g for g in mine + every if "digest" in g]
    assert (await s.call("GET", "/v1/tokens?tenant=globex", acme_admin))[0] == 403
    assert (await s.call("GET", "/v1/tokens", acme_submitter))[0] == 403

    # Another tenant's token does not exist for acme's admin; its own stops working at once.
    globex_id = globex_reader.split("_")[1]
    status, body, _ = await s.call("DELETE", f"/v1/tokens/{globex_id}", acme_admin)
    assert (status, body["error"]) == (404, f"no token {globex_id}")
    assert (await s.call("GET", "/v1/tasks", globex_reader))[0] == 200
    status, revoked, _ = await s.call("DELETE", f"/v1/tokens/{acme_submitter.split('_')[1]}", acme_admin)
    assert (status, revoked["tenant"], "digest" in revoked) == (200, "acme", False)
    assert (await s.call("POST", "/v1/tasks", acme_submitter, task | {"id": "t-late"}))[0] == 401
    assert (await s.call("DELETE", f"/v1/tokens/{globex_id}", operator))[0] == 200
    assert (await s.call("GET", "/v1/tasks", globex_reader))[0] == 401

    secrets = [t.split("_", 2)[2] for t in (globex_reader, acme_submitter)]
    assert not [r for r in caplog.records if any(x in r.getMessage() for x in secrets)]
