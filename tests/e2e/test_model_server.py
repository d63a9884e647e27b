"""The whole mesh with its agents on a model server that speaks OpenAI's Chat Completions protocol (a local
one, scripted per test): a task runs on its role's model and is charged exactly the usage the server
reported; a storm of 429s is waited out and charged once; a refused key fails the task, charging nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import msgspec
import pytest

from maestro import codec, history
from maestro.client import Client
from maestro.estimates import Prices, estimate
from maestro.pricing import Price
from maestro.settings import Settings
from maestro.smoke import CHAIN, agent_chain
from proto.v1 import AttemptFailed, Failed, Queued, TaskRequest, Usage
from proto.v1.workflows import step_task_id
from tests.e2e.conftest import open_mesh
from tests.services.agents.chat_server import KEY, ChatServer, Reply, error, serving

# gpt-4o at 2.5 and 10 USD per million tokens, the local model at 0.2 and 0.4: micro-USD per token.
PRICING = "gpt-4o=2.5:10,local=0.2:0.4"
GPT_4O = Price(2_500_000, 10_000_000)
LOCAL = Price(200_000, 400_000)


@pytest.fixture
async def server() -> AsyncIterator[ChatServer]:
    async with serving() as running:
        yield running


@pytest.fixture
def served(settings: Settings, server: ChatServer, tmp_path: Path) -> Settings:
    keyfile = tmp_path / "model-key"
    keyfile.write_text(f"{KEY}\n")
    return settings.with_(
        backend="openai",
        model_url=server.url,
        model_key_file=str(keyfile),
        models=("local", "gpt-4o"),
        model_ids=("local=meta-llama/Llama-3.1-8B-Instruct",),
        role_models=("planner=gpt-4o",),
        pricing=PRICING,
        model_read_timeout_s=5.0,
    )


@pytest.fixture
async def mesh(served: Settings) -> AsyncIterator[Client]:
    async with AsyncExitStack() as stack:
        yield await open_mesh(served, stack)


def task(task_id: str, role: str = "planner") -> TaskRequest:
    return msgspec.convert(
        {"id": task_id, "tenant": "acme", "role": role, "prompt": "Plan a CLI that counts words"}, TaskRequest
    )


def charged(price: Price, answered: list[tuple[int, int]]) -> tuple[int, int, int]:
    """The tokens the server reported over all its answers, and what they cost at `price`."""
    input_tokens = sum(i for i, _ in answered)
    output_tokens = sum(o for _, o in answered)
    return input_tokens, output_tokens, price.cost(input_tokens, output_tokens)


async def test_a_task_runs_on_its_role_s_model_and_is_charged_what_the_server_reported(
    mesh: Client, server: ChatServer, served: Settings
) -> None:
    await mesh.submit(task("t-plan"))
    record = await mesh.wait("t-plan", timeout=30)

    assert record.state == "succeeded", record
    # No model named: the planner's own (MAESTRO_ROLE_MODELS), not the first served.
    assert record.model == "gpt-4o"
    assert server.received, "the model server was never called"
    first = server.received[0]
    assert first.headers["Authorization"] == f"Bearer {KEY}"
    assert first.body["model"] == "gpt-4o"
    assert first.body["max_tokens"] == served.estimate_output_tokens
    assert first.body["messages"][-1]["role"] == "user"
    input_tokens, output_tokens, cost = charged(GPT_4O, server.answered)
    assert len(server.answered) == len(server.received)  # every call was answered, with usage
    assert record.usage == Usage(model="gpt-4o", input_tokens=input_tokens, output_tokens=output_tokens)
    assert record.cost_micro_usd == cost > 0
    ledger = await mesh.ledger("acme")
    assert ledger.spent_micro_usd == cost and ledger.held_micro_usd == 0
    assert ledger.models["gpt-4o"].spent_micro_usd == cost
    # The guard held the estimate at the same model's price.
    (queued,) = [e for e in await history.read_events(mesh.bus.js, "t-plan") if isinstance(e, Queued)]
    assert queued.decision.estimate_micro_usd == estimate(task("t-plan"), Prices.of(served)).micro_usd
    assert (
        queued.decision.estimate_micro_usd
        == estimate(msgspec.structs.replace(task("t-plan"), model="gpt-4o"), Prices.of(served)).micro_usd
    )


async def test_a_role_without_a_model_of_its_own_runs_on_the_first_served_by_the_server_s_id(
    mesh: Client, server: ChatServer
) -> None:
    server.role = "doc-writer"
    await mesh.submit(task("t-doc", role="doc-writer"))
    record = await mesh.wait("t-doc", timeout=30)

    assert (record.state, record.model) == ("succeeded", "local"), record
    assert {r.body["model"] for r in server.received} == {"meta-llama/Llama-3.1-8B-Instruct"}
    _, _, cost = charged(LOCAL, server.answered)
    assert record.cost_micro_usd == cost
    assert (await mesh.ledger("acme")).models["local"].spent_micro_usd == cost


async def test_a_storm_of_429s_is_waited_out_and_the_answer_charged_once(
    mesh: Client, server: ChatServer
) -> None:
    storm = [error(429, "Rate limit reached for gpt-4o", "requests", **{"Retry-After": "0"})] * 3
    server.then(*storm)
    await mesh.submit(task("t-storm"))
    record = await mesh.wait("t-storm", timeout=30)

    assert record.state == "succeeded", record
    assert record.attempts == 1  # retried inside the call, not as another attempt of the task
    assert len(server.received) == 3 + len(server.answered)
    input_tokens, output_tokens, cost = charged(GPT_4O, server.answered)
    assert record.usage == Usage(model="gpt-4o", input_tokens=input_tokens, output_tokens=output_tokens)
    ledger = await mesh.ledger("acme")
    assert ledger.spent_micro_usd == record.cost_micro_usd == cost
    assert ledger.held_micro_usd == 0


async def test_a_refused_key_fails_the_task_as_model_refused_and_charges_nothing(
    mesh: Client, server: ChatServer
) -> None:
    server.then(error(401, f"Incorrect API key provided: {KEY}.", "invalid_request_error"))
    await mesh.submit(task("t-401"))
    record = await mesh.wait("t-401", timeout=30)

    assert record.state == "failed", record
    assert len(server.received) == 1  # never tried again
    events = await mesh.events("t-401")
    failures = [e.failure for e in events if isinstance(e, AttemptFailed | Failed)]
    assert failures and set(failures) == {"model_refused"}
    assert "HTTP 401" in record.error and "Incorrect API key" in record.error
    ledger = await mesh.ledger("acme")
    assert (ledger.spent_micro_usd, ledger.held_micro_usd) == (0, 0)
    assert record.cost_micro_usd == 0
    # The key the server echoed back is nowhere in what Maestro stored.
    assert all(KEY.encode() not in codec.encode(e) for e in events)
    assert KEY not in record.error


async def test_a_repair_round_the_hold_cannot_cover_is_not_made_and_the_task_fails_as_budget(
    mesh: Client, server: ChatServer
) -> None:
    # The server counted far more than characters / 4 for an answer that is not a plan: the repair round it
    # would need no longer fits in what was held for the task.
    server.then(Reply(text="Sure! Here is a plan: first, count.", usage=(5000, 1000)))
    await mesh.submit(task("t-over"))
    record = await mesh.wait("t-over", timeout=30)

    assert record.state == "failed", record
    assert len(server.received) == 1  # the repair round was never sent
    events = await mesh.events("t-over")
    failures = [e.failure for e in events if isinstance(e, AttemptFailed | Failed)]
    assert failures and set(failures) == {"budget"}
    assert "model call not made" in record.error
    # The call that was answered is charged in full, as the server reported it.
    assert record.usage == Usage(model="gpt-4o", input_tokens=5000, output_tokens=1000)
    cost = GPT_4O.cost(5000, 1000)
    ledger = await mesh.ledger("acme")
    assert ledger.spent_micro_usd == record.cost_micro_usd == cost and ledger.held_micro_usd == 0


async def test_the_agent_chain_runs_on_the_model_server_and_each_step_pays_what_the_server_reported(
    mesh: Client, server: ChatServer
) -> None:
    # One server answers every role of the chain (as the offline backend would, so each answer is valid),
    # after a storm of 429s on the planner's first call.
    server.roles_by_instruction = True
    server.then(*[error(429, "Rate limit reached", "requests", **{"Retry-After": "0"})] * 3)
    workflow = msgspec.structs.replace(agent_chain("acme"), id="wf-chain-served")
    await mesh.run_workflow(workflow)

    record = await mesh.wait_workflow("wf-chain-served", timeout=90)

    assert record.state == "succeeded", record
    steps = [await mesh.get(step_task_id(record.id, name)) for name in CHAIN]
    assert "tests: 5 passed, 0 failed, 0 errored, 0 skipped" in steps[2].output.splitlines()
    # Every answer the server gave was charged once, on the step that asked, at what the server reported:
    # the 429s charged nothing, and the tokens of all steps add up to those of all answers.
    assert len(server.received) == len(server.answered) + 3
    used = [step.usage or Usage(model="none") for step in steps]
    # The planner on its own model (MAESTRO_ROLE_MODELS), the others on the first served.
    assert [u.model for u in used] == ["gpt-4o", "local", "local", "local", "local"]
    assert sum(u.input_tokens for u in used) == sum(i for i, _ in server.answered)
    assert sum(u.output_tokens for u in used) == sum(o for _, o in server.answered)
    price = {"gpt-4o": GPT_4O, "local": LOCAL}
    costs = [price[u.model].cost(u.input_tokens, u.output_tokens) for u in used]
    assert [step.cost_micro_usd for step in steps] == costs
    ledger = await mesh.ledger("acme")
    assert ledger.spent_micro_usd == record.cost_micro_usd == sum(costs) > 0
    assert ledger.held_micro_usd == 0
