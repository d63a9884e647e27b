"""What a task asks for is what it gets, or it is refused at the edge with the reason: its model (run,
billed and limited as that model), its data region, its context paths; and its record keeps its trace."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import msgspec
import pytest

from maestro import codec, history, topics, tracing
from maestro.client import Client
from maestro.estimates import Prices, estimate
from maestro.settings import Settings
from proto.v1 import Accepted, ContextFile, Queued, SetBudget, TaskRecord, TaskRequest
from tests.e2e.conftest import open_mesh

# gpt-4o at 2.5 and 10 USD per million tokens; every other model at the default prices.
PRICING = "gpt-4o=2.5:10"


@pytest.fixture
async def mesh(settings: Settings) -> AsyncIterator[Client]:
    async with AsyncExitStack() as stack:
        yield await open_mesh(settings.with_(models=("offline", "gpt-4o"), pricing=PRICING), stack)


def planner(task_id: str, **more: object) -> TaskRequest:
    return msgspec.convert(
        {"id": task_id, "tenant": "acme", "role": "planner", "prompt": "Plan a word counter", **more},
        TaskRequest,
    )


async def test_a_task_runs_on_the_model_it_asks_for_and_is_billed_at_its_price(mesh: Client) -> None:
    await mesh.submit(planner("t-4o", model="gpt-4o"))
    record = await mesh.wait("t-4o", timeout=30)
    assert record.state == "succeeded", record
    assert record.model == "gpt-4o"
    assert record.usage is not None and record.usage.model == "gpt-4o"
    usage = record.usage
    # 2.5 USD per million input tokens, 10 per million output tokens: micro-USD per token 2.5 and 10.
    assert record.cost_micro_usd == -(-(usage.input_tokens * 5 + usage.output_tokens * 20) // 2)
    ledger = await mesh.ledger("acme")
    assert ledger.models["gpt-4o"].spent_micro_usd == record.cost_micro_usd
    assert "offline" not in ledger.models
    # What was held for it was estimated at the same price, not at the default one.
    (queued,) = [e for e in await history.read_events(mesh.bus.js, "t-4o") if isinstance(e, Queued)]
    prices = Prices.of(mesh.bus.settings.with_(models=("offline", "gpt-4o"), pricing=PRICING))
    expected = estimate(planner("t-4o", model="gpt-4o"), prices)
    assert queued.decision.estimate_micro_usd == expected.micro_usd
    assert expected.micro_usd < estimate(planner("t-4o", model="offline"), prices).micro_usd


async def test_a_task_that_names_no_model_runs_on_the_default_and_says_so(mesh: Client) -> None:
    await mesh.submit(planner("t-default"))
    record = await mesh.wait("t-default", timeout=30)
    assert (record.state, record.model) == ("succeeded", "offline")
    assert record.usage is not None and record.usage.model == "offline"
    (accepted,) = [e for e in await history.read_events(mesh.bus.js, "t-default") if isinstance(e, Accepted)]
    assert accepted.model == "offline"


async def test_a_model_nobody_serves_is_refused_with_the_reason_and_nothing_held(mesh: Client) -> None:
    await mesh.submit(planner("t-unserved", model="gpt-5"))
    record = await mesh.wait("t-unserved", timeout=30)
    assert (record.state, record.violations) == ("rejected", ["models.not-served"])
    assert "gpt-5" in record.reason or "models.not-served" in record.reason
    ledger = await mesh.ledger("acme")
    assert (ledger.held_micro_usd, ledger.spent_micro_usd) == (0, 0)


async def test_a_models_sub_limit_holds_while_other_models_run(mesh: Client) -> None:
    await mesh.bus.calls.request(
        topics.BUDGET_SET, SetBudget(tenant="acme", scope="model", name="gpt-4o", limit_micro_usd=100)
    )
    await mesh.submit(planner("t-over", model="gpt-4o"))
    await mesh.submit(planner("t-other"))
    over = await mesh.wait("t-over", timeout=30)
    assert (over.state, over.violations) == ("rejected", ["budget.insufficient"])
    assert (await mesh.wait("t-other", timeout=30)).state == "succeeded"
    ledger = await mesh.ledger("acme")
    assert ledger.models["gpt-4o"].spent_micro_usd == 0
    assert ledger.models["gpt-4o"].held_micro_usd == 0


async def test_the_record_carries_the_trace_the_request_came_with(mesh: Client) -> None:
    traceparent = tracing.new_traceparent()
    await mesh.submit(planner("t-traced"), traceparent=traceparent)
    record = await mesh.wait("t-traced", timeout=30)
    assert record.trace_id == tracing.trace_id(traceparent)


@pytest.mark.parametrize(
    ("field", "value", "said"),
    [
        ("data_region", "mars", "neither a jurisdiction"),
        ("data_region", "eu-west-99", "neither a jurisdiction"),
        ("context", [{"path": "/etc/passwd"}], "absolute"),
        ("context", [{"path": "src/../../up.txt"}], "`..` segment"),
        ("context", [{"path": "a\u0000b"}], "control character"),
        ("model", "m" * 5000, "model"),
    ],
)
async def test_values_that_cannot_be_right_are_refused_on_the_request_subject(
    mesh: Client, field: str, value: object, said: str
) -> None:
    task_id = f"t-bad-{field}-{abs(hash(str(value))) % 10_000}"
    body = {"id": task_id, "tenant": "acme", "role": "planner", "prompt": "p", field: value}
    await mesh.bus.nc.publish(topics.REQUESTS.subject("acme"), codec.encode(body))
    record = await wait_record(mesh, task_id)
    assert (record.state, record.violations) == ("rejected", ["input.undecodable"])
    assert said in record.reason
    ledger = await mesh.ledger("acme")
    assert (ledger.held_micro_usd, ledger.spent_micro_usd) == (0, 0)


def test_the_sdk_refuses_them_before_anything_is_sent() -> None:
    with pytest.raises(ValueError, match="neither a jurisdiction"):
        TaskRequest(tenant="acme", role="planner", prompt="p", data_region="mars")
    with pytest.raises(ValueError, match="absolute"):
        ContextFile(path="/etc/passwd")
    for region in ("eu", "EU", "de", "uk", "eu-west-1", "westeurope", "europe-west4"):
        assert TaskRequest(tenant="acme", role="planner", prompt="p", data_region=region)


async def wait_record(client: Client, task_id: str, within: float = 30.0) -> TaskRecord:
    async with asyncio.timeout(within):
        while True:
            try:
                record = await client.get(task_id)
            except Exception:
                record = None
            if record is not None and record.state == "rejected":
                return record
            await asyncio.sleep(0.05)
