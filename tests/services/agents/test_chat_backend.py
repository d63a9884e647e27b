"""The Chat Completions backend against a local server speaking the protocol: what it sends, how it retries
and fails, what it charges, and that the API key never leaves in a message, a log line or a repr."""

from __future__ import annotations

import dataclasses
import logging
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest

from maestro.estimates import Prices, count_tokens, estimate
from maestro.policy.engine import with_model
from maestro.pricing import Price, PriceTable
from maestro.settings import Settings, SettingsError
from maestro.supervisor import settings_env
from proto.v1 import TaskRequest, Usage
from services.agents.backends import ModelFailed, OfflineBackend, Turn, UnservedModel
from services.agents.backends.backoff import Backoff, retry_after_s
from services.agents.backends.base import OverBudget
from services.agents.backends.chat import ApiKey, ChatBackend, ChatConfig, response_format
from services.agents.backends.choice import api_key, closing, open_backend
from services.agents.backends.conversation import messages, prompt_tokens
from services.agents.backends.metered import MIN_ANSWER_TOKENS, Allowance, Metered
from tests.services.agents.chat_server import KEY, ChatServer, Reply, error, serving

QUICK = Backoff(base_s=0.01, cap_s=0.05)


class Plan(msgspec.Struct):
    steps: list[str]


@pytest.fixture
async def server() -> AsyncIterator[ChatServer]:
    async with serving() as running:
        yield running


@pytest.fixture
async def chat(server: ChatServer) -> AsyncIterator[ChatBackend]:
    async with closing(configured(server)) as opened:
        assert isinstance(opened, ChatBackend)
        yield opened


def configured(server: ChatServer, **changes: Any) -> ChatBackend:
    config = ChatConfig(
        base_url=server.url,
        models=("gpt-4o", "local"),
        key=ApiKey(KEY),
        model_ids={"local": "meta-llama/Llama-3.1-8B-Instruct"},
        role_models={"doc-writer": "local"},
        max_tokens=700,
        retries=3,
        retry_total_s=10.0,
        backoff=QUICK,
    )
    return ChatBackend(dataclasses.replace(config, **changes), rng=random.Random(7))


async def test_a_call_sends_the_key_the_mapped_model_the_bound_and_the_messages_in_order(
    server: ChatServer, chat: ChatBackend
) -> None:
    history = (Turn("user", "Plan a word counter"), Turn("assistant", "1. count"))
    schema = msgspec.json.schema(Plan)
    done = await chat.complete(
        "doc-writer", "Number the steps", None, system="You write docs.", schema=schema, history=history
    )
    (seen,) = server.received
    assert seen.headers["Authorization"] == f"Bearer {KEY}"
    assert seen.headers["Content-Type"] == "application/json"
    body = seen.body
    # doc-writer runs on its role's model when the call names none, sent by the server's id for it.
    assert body["model"] == "meta-llama/Llama-3.1-8B-Instruct"
    assert body["max_tokens"] == 700
    assert body["messages"] == [
        {"role": "system", "content": "You write docs."},
        {"role": "user", "content": "Plan a word counter"},
        {"role": "assistant", "content": "1. count"},
        {"role": "user", "content": "Number the steps"},
    ]
    fmt = body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["name"] == "Plan"
    assert fmt["json_schema"]["schema"]["type"] == "object"  # the $ref root inlined, as OpenAI requires
    assert fmt["json_schema"]["schema"]["required"] == ["steps"]
    # The usage charged is the server's, named by Maestro's model name.
    assert done.usage == Usage(model="local", input_tokens=123, output_tokens=45)
    assert done.text  # the offline planner's text, as the server answered it


async def test_a_call_names_its_model_and_else_the_first_served(
    server: ChatServer, chat: ChatBackend
) -> None:
    await chat.complete("planner", "Plan it", "local", max_tokens=90)
    await chat.complete("planner", "Plan it", None)
    assert [r.body["model"] for r in server.received] == ["meta-llama/Llama-3.1-8B-Instruct", "gpt-4o"]
    assert [r.body["max_tokens"] for r in server.received] == [90, 700]
    assert [r.body["messages"] for r in server.received][1] == [{"role": "user", "content": "Plan it"}]
    assert "response_format" not in server.received[0].body
    with pytest.raises(UnservedModel):
        await chat.complete("planner", "Plan it", "gpt-5")
    assert len(server.received) == 2


@pytest.mark.parametrize(("mode", "expected"), [("object", {"type": "json_object"}), ("none", None)])
async def test_a_server_without_json_schema_is_asked_for_json_object_or_nothing(
    server: ChatServer, mode: str, expected: dict[str, str] | None
) -> None:
    async with closing(configured(server, json_mode=mode)) as chat:
        await chat.complete("planner", "Plan it", None, schema=msgspec.json.schema(Plan))
    assert server.received[0].body.get("response_format") == expected


async def test_an_answer_without_usage_is_charged_by_counting_what_was_sent_and_answered(
    server: ChatServer, chat: ChatBackend
) -> None:
    server.then(Reply(text="1. Count the words\n2. Print them", usage=None))
    done = await chat.complete("planner", "Plan a word counter", None, system="Plan well.")
    sent = messages("Plan a word counter", system="Plan well.")
    assert done.usage == Usage(
        model="gpt-4o",
        input_tokens=prompt_tokens(sent),
        output_tokens=count_tokens("1. Count the words\n2. Print them"),
    )
    assert done.usage.input_tokens > count_tokens("Plan a word counter")  # the system message counts too


async def test_a_429_is_tried_again_after_the_retry_after_the_server_gave(
    server: ChatServer, chat: ChatBackend
) -> None:
    server.then(error(429, "Rate limit reached", "requests", **{"Retry-After": "1"}))
    done = await chat.complete("planner", "Plan it", None)
    first, second = server.received
    assert 1.0 <= second.at - first.at < 1.5  # the server's second, plus at most a tenth of it for jitter
    assert done.usage.input_tokens == 123


async def test_a_retry_after_given_as_an_http_date_is_a_wait_until_then() -> None:
    now = datetime(2026, 12, 2, 12, 0, 0, tzinfo=UTC)
    assert retry_after_s(format_datetime(now + timedelta(seconds=7), usegmt=True), now) == 7.0
    assert retry_after_s(format_datetime(now - timedelta(seconds=7), usegmt=True), now) == 0.0
    assert retry_after_s("2.5", now) == 2.5
    assert retry_after_s("soon", now) is None and retry_after_s(None, now) is None


def test_the_backoff_doubles_with_jitter_and_a_retry_after_is_never_shortened() -> None:
    rng = random.Random(1)
    backoff = Backoff(base_s=1.0, cap_s=8.0)
    waits = [backoff.wait_s(n, None, rng) for n in (1, 2, 3, 4, 5)]
    for wait, ceiling in zip(waits, (1, 2, 4, 8, 8), strict=True):
        assert ceiling / 2 <= wait <= ceiling
    assert all(3.0 <= backoff.wait_s(1, 3.0, rng) <= 3.3 for _ in range(20))


@pytest.mark.parametrize(
    "reply",
    [
        error(500, "The server had an error"),
        error(503, "Overloaded"),
        error(408, "Request timed out"),
        Reply(body=b"{not json"),
        Reply(body=b'{"choices": []}'),
    ],
    ids=["500", "503", "408", "malformed", "no-choices"],
)
async def test_an_answer_worth_another_try_is_tried_again_then_succeeds(
    server: ChatServer, chat: ChatBackend, reply: Reply
) -> None:
    server.then(reply, reply)
    done = await chat.complete("planner", "Plan it", None)
    assert len(server.received) == 3
    assert done.usage.output_tokens == 45


async def test_a_server_that_keeps_failing_fails_the_call_as_retryable_after_the_retries(
    server: ChatServer, chat: ChatBackend
) -> None:
    server.default = error(500, "The server had an error")
    with pytest.raises(ModelFailed) as failed:
        await chat.complete("planner", "Plan it", None)
    assert failed.value.retryable
    assert len(server.received) == 4  # the first try and 3 retries
    assert "HTTP 500" in str(failed.value) and "The server had an error" in str(failed.value)


async def test_a_retry_after_past_the_total_time_fails_at_once(server: ChatServer) -> None:
    server.default = error(429, "Rate limit reached", **{"Retry-After": "30"})
    async with closing(configured(server, retry_total_s=2.0)) as chat:
        with pytest.raises(ModelFailed) as failed:
            await chat.complete("planner", "Plan it", None)
    assert failed.value.retryable and "HTTP 429" in str(failed.value)
    assert len(server.received) == 1  # it did not wait 30 s to be turned away again


async def test_an_answer_slower_than_the_read_timeout_is_abandoned_and_tried_again(
    server: ChatServer,
) -> None:
    server.then(Reply(delay_s=2.0))
    async with closing(configured(server, read_timeout_s=0.3)) as chat:
        done = await chat.complete("planner", "Plan it", None)
    first, second = server.received
    assert 0.3 <= second.at - first.at < 1.5  # not the 2 s the first answer would have taken
    assert done.usage.input_tokens == 123


async def test_a_server_nobody_listens_on_fails_as_retryable(tmp_path: Path) -> None:
    async with serving() as gone:
        url = gone.url
    chat = ChatBackend(ChatConfig(base_url=url, models=("gpt-4o",), retries=2, backoff=QUICK))
    async with closing(chat):
        with pytest.raises(ModelFailed) as failed:
            await chat.complete("planner", "Plan it", None)
    assert failed.value.retryable and "in 3 tries" in str(failed.value)


@pytest.mark.parametrize(
    ("reply", "words"),
    [
        (error(401, f"Incorrect API key provided: {KEY}. Find your key at platform.openai.com"), "HTTP 401"),
        (error(400, "max_tokens is too large: 700", param="max_tokens"), "max_tokens is too large"),
        (error(404, "The model `gpt-4o` does not exist"), "does not exist"),
    ],
    ids=["401", "400", "404"],
)
async def test_a_refusal_is_not_retried_and_its_message_never_holds_the_key(
    server: ChatServer, chat: ChatBackend, reply: Reply, words: str, caplog: pytest.LogCaptureFixture
) -> None:
    server.then(reply)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ModelFailed) as failed:
        await chat.complete("planner", "Plan it", None)
    assert not failed.value.retryable
    assert len(server.received) == 1
    message = str(failed.value)
    assert words in message and str(reply.status) in message
    assert KEY not in message and KEY not in repr(failed.value)
    assert KEY not in caplog.text


async def test_the_key_is_in_no_log_line_nor_repr_while_retrying(
    server: ChatServer, chat: ChatBackend, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server.then(error(503, f"upstream said: Bearer {KEY}"), error(429, "slow down"))
    await chat.complete("planner", "Plan it", None)
    assert "trying gpt-4o again" in caplog.text  # the retries were logged
    assert KEY not in caplog.text
    assert KEY not in repr(chat) and KEY not in repr(chat.config) and KEY not in str(chat.config.key)


def test_a_schema_rooted_in_a_ref_is_inlined_and_named() -> None:
    fmt = response_format(msgspec.json.schema(Plan), "schema")
    assert fmt is not None
    schema = fmt["json_schema"]["schema"]
    assert fmt["json_schema"]["name"] == "Plan" and schema["properties"]["steps"]["type"] == "array"
    assert response_format({"type": "object"}, "schema") == {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": {"type": "object"}},
    }


# The allowance: a task's calls stay within what the guard held for it.

PRICES = Prices(
    PriceTable(unlisted=Price(2_500_000, 10_000_000)), estimate_output_tokens=700, models=("gpt-4o",)
)


def planner(prompt: str) -> TaskRequest:
    return TaskRequest(id="t-1", tenant="acme", role="planner", prompt=prompt, model="gpt-4o")


async def test_each_call_is_bounded_by_what_is_left_of_the_estimate(
    server: ChatServer, chat: ChatBackend
) -> None:
    request = planner("Plan a word counter")
    allowance = Allowance.of(request, PRICES)
    assert allowance.micro_usd == estimate(request, PRICES).micro_usd
    server.default = Reply(usage=(100, 700))
    meter = Metered(chat, allowance)
    await meter.complete("planner", request.prompt, "gpt-4o")
    history = (Turn("user", request.prompt), Turn("assistant", "x" * 2800))
    await meter.complete("planner", "That was not valid; again.", "gpt-4o", history=history)
    first, second = (r.body["max_tokens"] for r in server.received)
    assert first == 700  # MAESTRO_ESTIMATE_OUTPUT_TOKENS: the output the guard assumed
    assert MIN_ANSWER_TOKENS <= second <= 700
    spent = meter.spent
    assert spent == Usage(model="gpt-4o", input_tokens=200, output_tokens=1400)
    # Whatever the server answers within the bounds, the cost stays within the hold.
    price = PRICES.table.price("gpt-4o")
    assert price is not None and price.cost(spent.input_tokens, spent.output_tokens) <= allowance.micro_usd


async def test_a_call_that_could_not_afford_a_short_answer_is_not_made(
    server: ChatServer, chat: ChatBackend
) -> None:
    request = planner("Plan a word counter")
    meter = Metered(chat, Allowance.of(request, PRICES))
    huge = "word " * 40_000  # far more than the request the guard estimated
    with pytest.raises(OverBudget) as over:
        await meter.complete("planner", huge, "gpt-4o")
    assert "MAESTRO_ESTIMATE_OUTPUT_TOKENS" in str(over.value)
    assert server.received == []
    assert meter.spent == Usage(model="none")


def test_the_allowance_counts_money_and_tokens() -> None:
    free = Allowance(tokens=10_000, micro_usd=0, price=Price(0, 0), per_call=1000)
    assert free.output_left(Usage(model="m"), reading=500) == 1000
    assert free.output_left(Usage(model="m", input_tokens=500, output_tokens=8000), reading=600) == 900
    # 10 micro-USD per input token, 20 per output token, 100_000 micro-USD held.
    priced = Allowance(tokens=10**6, micro_usd=100_000, price=Price(10_000_000, 20_000_000), per_call=10**6)
    assert priced.output_left(Usage(model="m"), reading=1000) == (100_000 - 10 * 1000) // 20


async def test_the_offline_backend_is_metered_without_a_bound() -> None:
    meter = Metered(OfflineBackend(("gpt-4o",)), Allowance.of(planner("Plan a word counter"), PRICES))
    done = await meter.complete("planner", "Plan a word counter", "gpt-4o")
    assert meter.spent == done.usage


# The model a task runs on when it names none: its role's, for the guard as for the backend.


def test_a_role_model_is_the_guard_s_default_and_priced_as_such() -> None:
    settings = Settings.from_env(
        {
            "MAESTRO_MODELS": "local,gpt-4o",
            "MAESTRO_ROLE_MODELS": "planner=gpt-4o",
            "MAESTRO_PRICING": "local=0:0,gpt-4o=2.5:10",
        }
    )
    prices = Prices.of(settings)
    plan = TaskRequest(id="t-2", tenant="acme", role="planner", prompt="Plan it")
    doc = TaskRequest(id="t-3", tenant="acme", role="doc-writer", prompt="Document it")
    assert with_model(plan, prices).model == "gpt-4o"
    assert with_model(doc, prices).model == "local"
    assert estimate(plan, prices) == estimate(with_model(plan, prices), prices)
    assert estimate(plan, prices).micro_usd > 0 == estimate(doc, prices).micro_usd


# Settings and the backend they choose.


def test_the_offline_backend_stays_the_default() -> None:
    assert isinstance(open_backend(Settings.from_env({}), {}), OfflineBackend)


def test_the_key_comes_from_its_file_else_from_the_variable_named(tmp_path: Path) -> None:
    keyfile = tmp_path / "key"
    keyfile.write_text(f"{KEY}\n")
    env = {"MAESTRO_BACKEND": "openai", "MAESTRO_MODEL_KEY_ENV": "MY_KEY"}
    from_env = Settings.from_env(env)
    assert api_key(from_env, {"MY_KEY": "sk-other"}).reveal() == "sk-other"  # type: ignore[union-attr]
    assert api_key(from_env, {}) is None  # a local server: no key sent
    from_file = Settings.from_env({**env, "MAESTRO_MODEL_KEY_FILE": str(keyfile)})
    assert api_key(from_file, {"MY_KEY": "sk-other"}).reveal() == KEY  # type: ignore[union-attr]
    chosen = open_backend(from_file, {})
    assert isinstance(chosen, ChatBackend) and KEY not in repr(chosen) and KEY not in repr(from_file)
    keyfile.write_text("\n")
    with pytest.raises(SettingsError, match="MAESTRO_MODEL_KEY_FILE"):
        open_backend(from_file, {})


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"MAESTRO_BACKEND": "anthropic"}, "MAESTRO_BACKEND"),
        ({"MAESTRO_MODEL_JSON": "yaml"}, "MAESTRO_MODEL_JSON"),
        ({"MAESTRO_MODEL_URL": "api.openai.com"}, "MAESTRO_MODEL_URL"),
        ({"MAESTRO_MODEL_KEY_ENV": "MY KEY"}, "MAESTRO_MODEL_KEY_ENV"),
        ({"MAESTRO_MODEL_IDS": "gpt-4o"}, "MAESTRO_MODEL_IDS"),
        ({"MAESTRO_MODEL_IDS": "gpt-5=gpt-5-preview"}, "MAESTRO_MODEL_IDS"),
        ({"MAESTRO_ROLE_MODELS": "poet=offline"}, "MAESTRO_ROLE_MODELS"),
        ({"MAESTRO_ROLE_MODELS": "planner=gpt-5"}, "MAESTRO_ROLE_MODELS"),
        ({"MAESTRO_MODEL_RETRIES": "-1"}, "MAESTRO_MODEL_RETRIES"),
        ({"MAESTRO_MODEL_READ_TIMEOUT_S": "0"}, "MAESTRO_MODEL_READ_TIMEOUT_S"),
        (
            {"MAESTRO_BACKEND": "openai", "MAESTRO_MODEL_KEY_FILE": "/nonexistent/key"},
            "MAESTRO_MODEL_KEY_FILE",
        ),
    ],
)
def test_a_model_server_setting_that_cannot_be_right_stops_start_up_naming_it(
    env: dict[str, str], named: str
) -> None:
    with pytest.raises(SettingsError, match=named):
        Settings.from_env(env)


def test_model_server_settings_are_read() -> None:
    settings = Settings.from_env(
        {
            "MAESTRO_BACKEND": "openai",
            "MAESTRO_MODELS": "gpt-4o,local",
            "MAESTRO_MODEL_IDS": "local=meta-llama/Llama-3.1-8B-Instruct",
            "MAESTRO_MODEL_RETRIES": "0",
            "MAESTRO_MODEL_JSON": "object",
        }
    )
    chat = open_backend(settings, {"OPENAI_API_KEY": KEY})
    assert isinstance(chat, ChatBackend)
    assert chat.config.model_ids == {"local": "meta-llama/Llama-3.1-8B-Instruct"}
    assert (chat.config.retries, chat.config.json_mode, chat.config.max_tokens) == (0, "object", 1024)


def test_the_children_of_maestro_up_read_the_same_model_server_settings() -> None:
    settings = Settings(
        backend="openai",
        models=("gpt-4o", "local"),
        model_ids=("local=meta-llama/Llama-3.1-8B-Instruct",),
        role_models=("planner=gpt-4o",),
        model_retries=0,
        model_json="object",
        model_read_timeout_s=42.5,
    )
    back = Settings.from_env(settings_env(settings))
    assert back.with_(worker=settings.worker, state_dir=settings.state_dir) == settings
