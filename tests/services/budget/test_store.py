"""The ledgers in the KV bucket, on a real nats-server: what the bucket holds when someone else touched it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import pytest
from prometheus_client import CollectorRegistry

from maestro import codec, pricing, topics
from maestro.bus import Bus
from maestro.errors import RemoteError
from maestro.runtime import open_bus, running_service
from maestro.settings import Settings
from proto.v1 import (
    Commit,
    GetLedger,
    LedgerRecreated,
    LedgerView,
    Reservation,
    Reserve,
    SetBudget,
    Settlement,
    Usage,
)
from services.budget.ledger import Ledger
from services.budget.metrics import BudgetMetrics
from services.budget.service import SERVICE, serve
from services.budget.store import Ledgers
from tests.services.budget.support import answering, wait_for_events


def reserve(task: str, amount: int = 100) -> Reserve:
    return Reserve(tenant="acme", task_id=task, estimate_micro_usd=amount)


def commit(task: str) -> Commit:
    return Commit(tenant="acme", reservation_id=f"r-{task}", usage=Usage(model="m", input_tokens=10))


async def test_a_ledger_deleted_or_purged_from_the_bucket_starts_afresh_and_says_so(
    settings: Settings, bus: Bus
) -> None:
    settings = settings.with_(default_limit_micro_usd=1000, pricing="m=1:0")
    kv = await bus.js.key_value(topics.BUCKET_BUDGET)
    registry = CollectorRegistry()
    async with open_bus(settings, "budget-own", registry) as own:
        serving = asyncio.create_task(serve(own))
        try:
            await answering(bus)
            removals: list[Callable[[str], Awaitable[bool]]] = [kv.delete, kv.purge]
            for n, remove in enumerate(removals):
                assert (
                    await bus.calls.request(topics.BUDGET_RESERVE, reserve(f"old{n}"), key="acme")
                ).granted
                await bus.calls.request(topics.BUDGET_RESERVE, reserve(f"gone{n}"))
                await bus.calls.request(topics.BUDGET_COMMIT, commit(f"old{n}"), key="acme")
                # `nats kv del maestro_budget acme`, or `nats kv purge`: the replica's copy is stale now too.
                await remove("acme")

                # Every kind of write works again, on a fresh ledger.
                for key in ("acme", None):
                    granted = await bus.calls.request(
                        topics.BUDGET_RESERVE, reserve(f"new{n}{key}", 300), key=key
                    )
                    assert granted.granted
                    settled = await bus.calls.request(topics.BUDGET_COMMIT, commit(f"new{n}{key}"), key=key)
                    assert settled.charged_micro_usd == 10 and not settled.already_settled
                changed = await bus.calls.request(
                    topics.BUDGET_SET, SetBudget(tenant="acme", limit_micro_usd=2000)
                )
                assert changed.limit_micro_usd == 2000
                view = await answering(bus)
                assert (view.spent_micro_usd, view.held_micro_usd, view.holds) == (20, 0, 0)
                # What the removed ledger held went with it: its reservations are unknown now.
                with pytest.raises(RemoteError) as err:
                    await bus.calls.request(topics.BUDGET_COMMIT, commit(f"gone{n}"))
                assert err.value.code == 404
                await bus.calls.request(topics.BUDGET_SET, SetBudget(tenant="acme", limit_micro_usd=1000))
        finally:
            own.lifetime.stop()
            await asyncio.wait_for(serving, 5)
    assert registry.get_sample_value("maestro_budget_ledgers_recreated_total", {"tenant": "acme"}) == 2
    events = await wait_for_events(
        bus.js, "acme", lambda found: sum(isinstance(e, LedgerRecreated) for e in found) == 2
    )
    recreated = [e for e in events if isinstance(e, LedgerRecreated)]
    assert [e.removed_by for e in recreated] == ["DEL", "PURGE"]
    assert all(e.removed_revision > 0 for e in recreated)


async def test_a_tenant_the_bucket_cannot_take_as_a_key_is_400_not_retried(
    settings: Settings, bus: Bus
) -> None:
    async with running_service(SERVICE, settings):
        await answering(bus)
        # Tenant ids are checked by their type; a newline at the end slipped past its pattern.
        for tenant in ("acme\n",):
            data = json.dumps({"tenant": tenant}).encode()
            reply = await bus.nc.request(topics.BUDGET_GET.subject, data, timeout=5)
            assert reply.headers and reply.headers[topics.HEADER_ERROR_CODE] == "400", reply.headers
            assert "tenant" in reply.headers[topics.HEADER_ERROR]


async def test_a_replica_reading_back_the_entry_it_wrote_keeps_its_copy_and_decodes_anyone_elses(
    settings: Settings, bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    kv = await bus.js.key_value(topics.BUCKET_BUDGET)
    decode = codec.decode
    decoded: list[bytes] = []

    def counting(type_: Any, data: bytes | str) -> Any:
        if type_ is Ledger:
            decoded.append(bytes(data, "utf-8") if isinstance(data, str) else data)
        return decode(type_, data)

    monkeypatch.setattr(codec, "decode", counting)
    get = GetLedger(tenant="acme")
    async with asyncio.TaskGroup() as group:
        metrics = BudgetMetrics.create(CollectorRegistry())
        ledgers = Ledgers(bus, kv, pricing.from_settings(settings), metrics, group)
        assert isinstance(await ledgers.submit("acme", reserve("t1")), Reservation)
        # A read answers from the latest entry: this replica's own write, which it need not decode again.
        view = await ledgers.submit("acme", get)
        assert isinstance(view, LedgerView) and view.holds == 1 and decoded == []
        # Another replica's write has another revision: read and decoded, whatever this one had.
        entry = await kv.get("acme")
        theirs = msgspec.structs.replace(decode(Ledger, entry.value or b""), limit_micro_usd=777)
        await kv.update("acme", codec.encode(theirs), last=entry.revision)
        view = await ledgers.submit("acme", get)
        assert isinstance(view, LedgerView) and view.limit_micro_usd == 777 and len(decoded) == 1
        view = await ledgers.submit("acme", get)  # as read: kept too
        assert isinstance(view, LedgerView) and view.limit_micro_usd == 777 and len(decoded) == 1
        settled = await ledgers.submit("acme", commit("t1"))
        assert isinstance(settled, Settlement) and settled.charged_micro_usd > 0 and len(decoded) == 1
