"""GET /v1/budgets/{tenant}/history on a running budget and orchestrator with tokens: the spend samples the
budget published and the alerts that fired, to the tenant's own token and an operator's, to no one else."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import msgspec
import pytest

from maestro import topics
from maestro.access.grants import mint
from maestro.access.token_store import TokenStore
from maestro.bus import Bus
from maestro.client import open_client
from maestro.runtime import running_service
from maestro.settings import Settings
from proto.v1 import BudgetHistory, Commit, Reserve, SetBudget, SpendSampled, ThresholdCrossed, Usage
from proto.v1.access import Scope
from services.budget import cli
from services.budget.service import SERVICE as BUDGET
from tests.services.budget.support import answering, wait_for_events
from tests.services.orchestrator.support import orchestrator


@dataclass
class Api:
    """The orchestrator's API with tokens, over a running budget that samples every half second."""

    bus: Bus
    port: int
    http: aiohttp.ClientSession
    settings: Settings

    async def token(self, tenant: str, *scopes: Scope) -> str:
        minted = mint(tenant=tenant, scopes=scopes, subject=f"someone@{tenant}", now=datetime.now(UTC))
        await TokenStore(self.bus).add(minted)
        return minted.token

    async def history(self, tenant: str, token: str, query: str = "") -> tuple[int, Any]:
        url = f"http://127.0.0.1:{self.port}/v1/budgets/{tenant}/history{query}"
        async with self.http.get(url, headers={"Authorization": f"Bearer {token}"}) as resp:
            return resp.status, await resp.read()


@pytest.fixture
async def api(settings: Settings, bus: Bus) -> AsyncIterator[Api]:
    settings = settings.with_(auth=True, budget_sample_s=0.5, pricing="unit=1:0")
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(running_service(BUDGET, settings))
        port = await stack.enter_async_context(orchestrator(settings))
        http = await stack.enter_async_context(aiohttp.ClientSession())
        await answering(bus)
        yield Api(bus, port, http, settings)


async def _spend(bus: Bus, tenant: str, task_id: str, micro_usd: int) -> None:
    """Reserve and commit as a guard and an agent would: `micro_usd` charged (one per input token)."""
    reserve = Reserve(tenant=tenant, task_id=task_id, estimate_micro_usd=micro_usd)
    assert (await bus.calls.request(topics.BUDGET_RESERVE, reserve)).granted
    usage = Usage(model="unit", input_tokens=micro_usd)
    commit = Commit(tenant=tenant, reservation_id=f"r-{task_id}", usage=usage)
    assert (await bus.calls.request(topics.BUDGET_COMMIT, commit)).charged_micro_usd == micro_usd


async def test_the_history_holds_the_spend_sampled_and_the_threshold_crossed(
    api: Api, capsys: pytest.CaptureFixture[str]
) -> None:
    await api.bus.calls.request(topics.BUDGET_SET, SetBudget(tenant="acme", limit_micro_usd=10_000))
    await _spend(api.bus, "acme", "t1", 6_000)  # 60%: the 50% threshold
    await wait_for_events(
        api.bus.js,
        "acme",
        lambda found: any(isinstance(e, SpendSampled) and e.spent_micro_usd == 6_000 for e in found),
        samples=True,
    )

    for token in (await api.token("acme", "read"), await api.token("*", "admin")):
        status, body = await api.history("acme", token, "?since=1h")
        assert status == 200, body
        history = msgspec.json.decode(body, type=BudgetHistory, strict=True)
        assert history.tenant == "acme" and not history.partial
        assert timedelta(minutes=59) < datetime.now(UTC) - history.since < timedelta(minutes=61)
        assert history.step_s == pytest.approx(3600 / 240, rel=0.01)
        last = history.samples[-1]
        assert (
            last.spent_micro_usd,
            last.held_micro_usd,
            last.limit_micro_usd,
            last.remaining_micro_usd,
        ) == (
            6_000,
            0,
            10_000,
            4_000,
        )
        assert [(a.scope, a.percent, a.spent, a.limit) for a in history.alerts] == [
            ("tenant", 50, 6_000, 10_000)
        ]
        assert isinstance(history.alerts[0], ThresholdCrossed)

    # The SDK and `maestro budget history` read the same.
    async with open_client(api.settings) as client:
        same = await client.budget_history("acme", "1h")
        with pytest.raises(ValueError, match="more than 7 days ago"):
            await client.budget_history("acme", "8d")
    assert (same.samples[-1], same.alerts) == (history.samples[-1], history.alerts)
    assert await cli.show_history(api.settings, argparse.Namespace(tenant="acme", since="1h")) == 0
    printed = capsys.readouterr().out
    assert "$0.006000" in printed and "budget.threshold" in printed and "tenant reached 50%" in printed

    # A range may not start in the future; one that starts now holds nothing of what came before.
    later = (datetime.now(UTC) + timedelta(seconds=1)).isoformat().replace("+00:00", "Z")
    token = await api.token("acme", "read")
    status, body = await api.history("acme", token, f"?since={later}")
    assert status == 400
    status, body = await api.history("acme", token, "?since=0m")
    history = msgspec.json.decode(body, type=BudgetHistory)
    assert (status, history.samples, history.alerts) == (200, [], [])


async def test_another_tenants_history_is_404_a_token_without_read_403_and_a_bad_since_400(api: Api) -> None:
    await _spend(api.bus, "acme", "t1", 1_000)
    globex = await api.token("globex", "read")
    submitter = await api.token("acme", "submit")
    reader = await api.token("acme", "read")

    status, body = await api.history("acme", globex)
    assert (status, msgspec.json.decode(body)["error"]) == (404, "no budget for tenant acme")
    status, body = await api.history("acme", submitter)
    assert (status, msgspec.json.decode(body)["scope"]) == (403, "read")
    for query, says in (
        ("?since=8d", "more than 7 days ago"),
        ("?since=yesterday", "neither an ISO 8601 time"),
        ("?since=2026-12-03T07:00:00", "has no zone"),
    ):
        status, body = await api.history("acme", reader, query)
        answer = msgspec.json.decode(body)
        assert (status, answer["field"]) == (400, "since"), answer
        assert says in answer["error"]
    status, body = await api.history("acme", reader, "?sinse=1h")
    assert (status, msgspec.json.decode(body)["field"]) == (400, "sinse")
    status, _ = await api.history("acme", reader)
    assert status == 200


def test_budget_history_refuses_a_since_it_cannot_read_naming_the_option(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = argparse.ArgumentParser(prog="maestro")
    cli.register(parser.add_subparsers(dest="command", required=True))
    assert parser.parse_args(["budget", "history", "acme"]).since is None
    assert parser.parse_args(["budget", "history", "acme", "--since", "2h"]).since == "2h"
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args(["budget", "history", "acme", "--since", "8d"])
    assert exit_.value.code == 2
    assert "--since" in capsys.readouterr().err
