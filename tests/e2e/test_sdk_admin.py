"""The SDK's admin calls against a real nats-server (and budget service): what the HTTP API's admin routes do,
done over NATS with the same types, and answered as the HTTP API answers them."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import msgspec
import pytest

from maestro import codec
from maestro.access.grants import BadToken
from maestro.access.token_store import TokenStore
from maestro.client import Client, open_client
from maestro.errors import NotFound, RemoteError
from maestro.policy.bundle import BundleError, load_default, parse, shipped_text
from maestro.runtime import running_service
from maestro.settings import Settings
from proto.v1 import LedgerView, SetBudget
from proto.v1.access import IssuedToken, TokenRequest, TokenView
from proto.v1.guard import PolicyInForce
from services.budget.service import SERVICE as BUDGET
from tests.e2e.conftest import wait_for_budget
from tests.services.orchestrator.support import orchestrator

BUNDLE = "version: sdk-1\ndefault:\n  approval_timeout_s: 60\n"
OVERRIDE = "credentials: {action: redact}\n"
BROKEN = "version: sdk-broken\ndefault:\n  budget: {action: explode}\n"
TOKEN = re.compile(r"^mst_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[Client]:
    async with open_client(settings) as connected:
        yield connected


async def test_set_budget_changes_the_ledger_and_a_refused_change_says_why(settings: Settings) -> None:
    async with running_service(BUDGET, settings), open_client(settings) as client:
        await wait_for_budget(client)

        view = await client.set_budget(SetBudget(tenant="acme", limit_micro_usd=7_000_000, window="total"))
        assert (view.tenant, view.limit_micro_usd, view.window) == ("acme", 7_000_000, "total")
        role = await client.set_budget(
            SetBudget(tenant="acme", scope="role", name="tester", limit_micro_usd=2_000_000)
        )
        assert role.roles["tester"].limit_micro_usd == 2_000_000 and role.limit_micro_usd == 7_000_000
        assert await client.ledger("acme") == role

        with pytest.raises(RemoteError) as refused:
            await client.set_budget(SetBudget(tenant="acme", scope="role", name="juggler", limit_micro_usd=1))
        assert refused.value.code == 400 and "'juggler' is not a role" in refused.value.description
        assert (await client.ledger("acme")).roles.keys() == {"tester"}


async def test_push_policy_puts_a_bundle_in_force_and_reset_goes_back_to_the_shipped_one(
    client: Client,
) -> None:
    shipped = load_default()
    fresh = await client.policy()
    assert (fresh.version, fresh.hash, fresh.source, fresh.revision) == (
        shipped.version,
        shipped.hash,
        "shipped",
        0,
    )
    assert fresh.pushed_by is None and fresh.yaml == shipped_text().decode()

    pushed = await client.push_policy(BUNDLE, by="alice")
    assert (pushed.version, pushed.hash, pushed.source) == ("sdk-1", parse(BUNDLE.encode()).hash, "pushed")
    assert pushed.pushed_by == "alice" and pushed.pushed_at is not None and pushed.yaml == BUNDLE
    assert await client.policy() == pushed

    merged = await client.push_policy(OVERRIDE.encode(), tenant="acme", by="carol")
    assert (merged.tenants, merged.pushed_by) == (("acme",), "carol")
    assert merged.version.startswith("sdk-1+acme.") and "redact" in merged.yaml
    assert merged.revision > pushed.revision

    with pytest.raises(BundleError) as broken:
        await client.push_policy(BROKEN, by="mallory")
    assert any("explode" in p.message and p.line == 3 for p in broken.value.problems), broken.value
    assert await client.policy() == merged  # a refused bundle is never stored

    reset = await client.reset_policy(by="bob")
    assert (reset.source, reset.hash, reset.pushed_by, reset.tenants) == ("shipped", shipped.hash, "bob", ())
    assert reset.revision > merged.revision and await client.policy() == reset


async def test_a_token_made_is_listed_without_its_secret_and_stops_working_when_revoked(
    client: Client,
) -> None:
    store = TokenStore(client.bus)
    expires = datetime.now(UTC) + timedelta(hours=1)
    wanted = TokenRequest(tenant="acme", scopes=("read", "submit"), subject="ci-bot", expires_at=expires)
    issued = await client.create_token(wanted, by="alice")
    token_id, secret = TOKEN.fullmatch(issued.token).groups()  # type: ignore[union-attr]
    grant = issued.grant
    assert (grant.id, grant.tenant, grant.scopes) == (token_id, "acme", ("submit", "read"))
    assert (grant.subject, grant.created_by, grant.expires_at) == ("ci-bot", "alice", expires)
    assert (await store.opened_by(issued.token)).id == token_id  # the token opens its grant
    mine = await client.create_token(TokenRequest(tenant="globex", scopes=("admin",)), by="bob")
    assert mine.grant.subject == "bob"  # no subject: the one who made it holds it

    listed = await client.tokens("acme")
    assert listed == [grant] and all(type(view) is TokenView for view in listed)
    shown = codec.encode(listed).decode()
    assert "digest" not in shown and secret not in shown
    assert {view.id for view in await client.tokens()} == {token_id, mine.grant.id}

    revoked = await client.revoke_token(token_id)
    assert revoked == grant and await client.tokens("acme") == []
    with pytest.raises(BadToken):
        await store.opened_by(issued.token)
    with pytest.raises(NotFound, match=f"no token {token_id}"):
        await client.revoke_token(token_id)
    with pytest.raises(RemoteError, match="not a token id"):
        await client.revoke_token("../maestro_tasks")


@pytest.mark.parametrize(
    ("wanted", "why"),
    [
        (TokenRequest(tenant="acme", scopes=()), "scopes"),
        (TokenRequest(tenant="Not A Tenant", scopes=("read",)), "tenant"),
        (TokenRequest(tenant="acme", scopes=("read",), subject="two words"), "subject"),
        (TokenRequest(tenant="acme", scopes=("read",), expires_at=datetime(2030, 1, 1)), "expires_at"),
        (
            TokenRequest(tenant="acme", scopes=("read",), expires_at=datetime(2020, 1, 1, tzinfo=UTC)),
            "cannot expire before it is made",
        ),
    ],
)
async def test_a_token_the_api_would_refuse_is_refused_and_nothing_is_stored(
    client: Client, wanted: TokenRequest, why: str
) -> None:
    with pytest.raises(RemoteError) as refused:
        await client.create_token(wanted, by="alice")
    assert refused.value.code == 400 and "cannot make that token" in refused.value.description
    assert why in refused.value.description
    assert await client.tokens() == []


async def test_the_sdk_and_the_http_api_answer_with_the_same_types_and_values(settings: Settings) -> None:
    async with (
        running_service(BUDGET, settings),
        orchestrator(settings) as port,
        open_client(settings) as client,
        aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http,
    ):
        await wait_for_budget(client)

        async def answer(type_: Any, method: str, path: str, **kwargs: Any) -> Any:
            async with http.request(method, path, **kwargs) as resp:
                assert resp.status < 300, await resp.text()
                return msgspec.json.decode(await resp.read(), type=type_, strict=True)

        budget = await client.set_budget(SetBudget(tenant="acme", limit_micro_usd=3_000_000))
        assert await answer(LedgerView, "GET", "/v1/budgets/acme") == budget

        pushed = await client.push_policy(BUNDLE, by="alice")
        assert await answer(PolicyInForce, "GET", "/v1/policy") == pushed

        issued = await client.create_token(TokenRequest(tenant="acme", scopes=("read",)), by="alice")
        made = await answer(IssuedToken, "POST", "/v1/tokens", json={"tenant": "acme", "scopes": ["read"]})
        assert await answer(list[TokenView], "GET", "/v1/tokens?tenant=acme") == await client.tokens("acme")
        assert [v.id for v in await client.tokens("acme")] == [issued.grant.id, made.grant.id]
        assert await client.revoke_token(made.grant.id) == made.grant
