"""A secret in a model's answer, end to end: masked before anything of it is stored, published or logged.

The whole mesh runs on a real nats-server (guard, budget, orchestrator and the agents' own service loop);
only the model is a stand-in, whose answers hard-code credentials in the code it writes or quote one in
the error it raises. Every message published on the server is heard, and every stream, bucket and object
store read back after: the secrets appear in none of them, nor in the HTTP API's answers or any log line.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass

import aiohttp
import pytest
from msgspec import json
from nats.aio.msg import Msg
from nats.js.errors import NotFoundError

from maestro import codec, history, topics
from maestro.client import Client, open_client
from maestro.runtime import open_bus, running_service
from maestro.settings import Settings
from proto.v1 import AttemptFailed, Role, Succeeded, TaskRecord, TaskRequest, Usage
from services.agents.backends.base import Completion, Schema, Turn
from services.agents.service import open_worker, serve_with
from services.budget.service import SERVICE as BUDGET
from services.guard.service import SERVICE as GUARD
from tests.e2e.conftest import wait_for_budget
from tests.services.orchestrator.support import orchestrator

# Built from parts so that this file holds nothing a secret scanner would flag.
GITHUB_TOKEN = "ghp" + "_" + "Xq7rT2bN9vKp4LmW8sYd3FhJ6gZc1QaE5uRo"
AWS_KEY = "AKIA" + "Z7QW3RT5YU2IOP4L"
SECRETS = (GITHUB_TOKEN, AWS_KEY)
SCRIPT = "api_client.py"
CRASH = "crash"
"""A prompt with this word makes the stand-in model fail, quoting a secret in its exception."""


class LeakyModel:
    """A model server stand-in whose every answer carries credentials."""

    def serves(self, model: str | None) -> bool:
        """Every model."""
        return True

    async def complete(
        self,
        role: Role,
        prompt: str,
        model: str | None,
        *,
        system: str = "",
        schema: Schema | None = None,
        history: Sequence[Turn] = (),
    ) -> Completion:
        """Code that hard-codes two credentials (as the answer a schema asks for, a new file, when asked for
        one); an exception that quotes one for a prompt that says crash."""
        if CRASH in prompt:
            raise RuntimeError(f"the model answered {GITHUB_TOKEN!r}, which is no code")
        code = (
            f'"""Calls the API."""\n\nTOKEN = "{GITHUB_TOKEN}"\nAWS_KEY_ID = "{AWS_KEY}"\nprint(len(TOKEN))\n'
        )
        text = code
        if schema is not None:
            summary = f"Wrote {SCRIPT}, which signs in with {GITHUB_TOKEN}"
            text = json.encode({"summary": summary, "files": [{"path": SCRIPT, "content": code}]}).decode()
        return Completion(text=text, usage=Usage(model=model or "offline", input_tokens=12, output_tokens=40))


@dataclass
class Mesh:
    """A client on the mesh, the HTTP API's port, and every message published on the server meanwhile."""

    client: Client
    port: int
    heard: list[Msg]

    async def api_get(self, path: str) -> str:
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{self.port}{path}") as resp:
            assert resp.status == 200, await resp.text()
            return await resp.text()


@pytest.fixture
async def mesh(settings: Settings) -> AsyncIterator[Mesh]:
    async with AsyncExitStack() as stack:
        for service in (BUDGET, GUARD):
            await stack.enter_async_context(running_service(service, settings))
        port = await stack.enter_async_context(orchestrator(settings))
        client = await stack.enter_async_context(open_client(settings))
        heard: list[Msg] = []

        async def hear(msg: Msg) -> None:
            heard.append(msg)

        agents = await stack.enter_async_context(open_bus(settings, "agents-with-a-leaky-model"))
        worker = dataclasses.replace(await open_worker(agents), backend=LeakyModel())
        serving = asyncio.create_task(serve_with(agents, worker))

        async def stop_serving() -> None:
            agents.lifetime.stop()
            await asyncio.wait_for(serving, 10)

        stack.push_async_callback(stop_serving)
        await wait_for_budget(client)
        # Only now: with a subscriber on every subject, a request nobody serves yet would wait, not fail fast.
        listener = await stack.enter_async_context(open_bus(settings, "listener"))
        await listener.nc.subscribe(">", cb=hear)
        yield Mesh(client, port, heard)


async def stored_bytes(client: Client) -> list[bytes]:
    """Every message of every stream on the server: events, task records, stored work, artifacts' chunks."""
    js = client.bus.js
    found: list[bytes] = []
    for info in await js.streams_info():
        state = info.state
        for seq in range(max(state.first_seq, 1), state.last_seq + 1 if state.messages else 1):
            try:
                msg = await js.get_msg(info.config.name or "", seq)
            except NotFoundError:
                continue  # deleted, or taken off a work queue
            found.append(msg.data or b"")
    return found


def assert_nowhere(texts: Sequence[str | bytes]) -> None:
    for text in texts:
        raw = text.encode() if isinstance(text, str) else text
        for secret in SECRETS:
            assert secret.encode() not in raw


async def test_a_secret_in_a_model_answer_reaches_no_event_record_artifact_or_log(
    mesh: Mesh, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = mesh.client
    wrote = await client.submit(
        TaskRequest(tenant="acme", role="implementer", prompt="Write a script for the API")
    )
    crashed = await client.submit(
        TaskRequest(tenant="acme", role="implementer", prompt=f"Please {CRASH} now")
    )

    done = await client.wait(wrote, timeout=20)
    assert done.state == "succeeded", done
    failed = await client.wait(crashed, timeout=20)
    assert failed.state == "failed", failed

    # The work is delivered with the credentials masked, and the record says what was found where.
    assert "[REDACTED:github-token]" in done.output
    assert {v.rule_id for v in done.rails} == {"credentials.github-token", "credentials.aws-access-key"}
    assert all(v.policy == "credentials" and v.enforced for v in done.rails)
    where = {v.location.rsplit(":", 2)[0] for v in done.rails}
    assert "output" in where
    store = await client.bus.js.object_store(topics.STORE_ARTIFACTS)
    prefix = f"acme/{wrote}/"
    masked = {}
    for artifact in done.artifacts:
        data = (await store.get(artifact.name)).data or b""
        masked[artifact.name.removeprefix(prefix)] = data.decode()
    assert 'TOKEN = "[REDACTED:github-token]"' in masked[SCRIPT]
    assert 'AWS_KEY_ID = "[REDACTED:aws-access-key]"' in masked[SCRIPT]
    assert f"files:{SCRIPT}" in where
    assert where - {"output"} == {f"files:{path}" for path, text in masked.items() if "[REDACTED:" in text}

    # A role that crashed on the answer fails with the error masked, and the finding is on its record too.
    assert "[REDACTED:github-token]" in failed.error
    assert [(v.rule_id, v.location.rsplit(":", 1)[0]) for v in failed.rails] == [
        ("credentials.github-token", "error:1")
    ]
    events = await history.read_events(client.bus.js, crashed)
    [attempt] = [e for e in events if isinstance(e, AttemptFailed)]
    assert attempt.rails == failed.rails and attempt.failure == "crash"
    [succeeded] = [e for e in await history.read_events(client.bus.js, wrote) if isinstance(e, Succeeded)]
    assert succeeded.rails == done.rails

    # Nowhere: not in any message published, anything stored, the API's answers, or a log line.
    for task_id in (wrote, crashed):
        record = await mesh.api_get(f"/v1/tasks/{task_id}")
        assert codec.decode(TaskRecord, record.encode()).rails
        assert_nowhere([record, await mesh.api_get(f"/v1/tasks/{task_id}/events")])
    assert_nowhere(await stored_bytes(client))
    assert_nowhere([msg.data for msg in mesh.heard])
    assert len(mesh.heard) > 20  # the subscription heard the mesh at work
    assert_nowhere([caplog.text])
    crash_logs = [r for r in caplog.records if r.getMessage().startswith("role implementer crashed")]
    assert crash_logs and "[REDACTED:github-token]" in crash_logs[0].getMessage()
