"""The deploy gate on a running mesh with tokens on: real tester tasks (their commands really run) prove a
commit or not; the CLI, the SDK and GET /v1/gates/deploy give the same answer, and each decision is on the
gate's stream with who asked and the task (and policy bundle) that proved it."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from maestro import history, topics
from maestro.access.grants import mint
from maestro.access.token_store import TokenStore
from maestro.client import Client
from maestro.settings import Settings
from proto.v1 import Queued, TaskRecord, TaskRequest
from proto.v1.access import ALL_TENANTS, Scope
from tests.e2e.conftest import in_state, recorded
from tests.e2e.test_approval_flow import PINNED, Mesh, awaiting, start

MAESTRO = str(Path(sys.executable).parent / "maestro")
REPO = "acme/widgets"


def new_sha() -> str:
    return secrets.token_hex(20)


class Gated:
    """A mesh whose API asks for tokens, and the calls these tests make to it."""

    def __init__(self, mesh: Mesh, http: aiohttp.ClientSession, settings: Settings) -> None:
        self.mesh = mesh
        self.http = http
        self.settings = settings
        self.tokens = TokenStore(mesh.bus)

    @property
    def client(self) -> Client:
        return self.mesh.client

    async def token(self, tenant: str, *scopes: Scope, subject: str) -> str:
        minted = mint(tenant=tenant, scopes=scopes, subject=subject, now=datetime.now(UTC))
        await self.tokens.add(minted)
        return minted.token

    async def ask(self, token: str, **params: str) -> tuple[int, Any]:
        url = f"http://127.0.0.1:{self.mesh.port}/v1/gates/deploy"
        headers = {"Authorization": f"Bearer {token}"}
        async with self.http.get(url, params=params, headers=headers) as resp:
            return resp.status, await resp.json()

    async def cli(self, *args: str) -> tuple[int, str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAESTRO_")}
        env["MAESTRO_NATS_URL"] = str(self.settings.nats_url)
        proc = await asyncio.create_subprocess_exec(
            MAESTRO, "gate", *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        return proc.returncode or 0, out.decode().strip(), err.decode().strip()

    async def tested(self, sha: str, command: str, *, tenant: str = "acme", **more: Any) -> str:
        """Submit a tester task for `sha` running `command`; its id."""
        request = TaskRequest(
            tenant=tenant,
            role="tester",
            prompt="run the tests",
            commands=[command],
            labels={"repo": REPO, "commit": sha},
            **more,
        )
        return await self.client.submit(request)

    async def ended(self, task_id: str) -> TaskRecord:
        return await self.client.wait(task_id, timeout=30)


async def consumers_on_tasks(client: Client) -> int:
    info = await client.bus.js.stream_info(topics.kv_stream(topics.BUCKET_TASKS))
    return int(info.state.consumer_count)


@pytest.fixture
async def gated(settings: Settings) -> AsyncIterator[Gated]:
    settings = settings.with_(auth=True)
    async with AsyncExitStack() as stack:
        mesh = await start(settings, stack)
        http = await stack.enter_async_context(aiohttp.ClientSession())
        yield Gated(mesh, http, settings)


async def test_the_gate_refuses_a_commit_until_its_tester_task_succeeds_and_every_door_says_the_same(
    gated: Gated, tmp_path: Path
) -> None:
    sha = new_sha()
    reader = await gated.token("acme", "read", subject="deploy-bot@acme")

    status, body = await gated.ask(reader, repo=REPO, commit=sha)  # a tenant's token may leave tenant out
    assert (status, body["allowed"], body["outcome"]) == (200, False, "no_test"), body
    code, out, err = await gated.cli("deploy", "--repo", REPO, "--commit", sha, "--tenant", "acme")
    assert (code, out) == (1, f"refused (no_test): no tester task for {REPO} at {sha} in tenant acme"), err

    # A tester task that runs until the test lets it finish: "still running" meanwhile, deterministically.
    release = tmp_path / "release"
    task_id = await gated.tested(sha, f"while [ ! -e {release} ]; do sleep 0.05; done; echo 12 passed")
    await in_state(gated.client, task_id, "running")
    # The gate reads the records (each ask is recorded as a decision): once the task's is written.
    await recorded(
        lambda: gated.client.tasks(tenant="acme"), lambda page: [r.id for r in page.items] == [task_id]
    )
    running = await gated.client.deploy_gate(tenant="acme", repo=REPO, commit=sha, by="sdk-user")
    assert (running.allowed, running.outcome, running.task_id) == (False, "running", task_id)
    assert running.reason.startswith(f"tester task {task_id} is still running (since ")

    # `--wait` follows the record until the task ends; it is waiting before the task is let go.
    before = await consumers_on_tasks(gated.client)
    asking = ["--repo", REPO, "--commit", sha.upper(), "--tenant", "acme", "--by", "pipeline#42"]
    waiting = asyncio.create_task(gated.cli("deploy", *asking, "--wait", "--timeout", "30s"))
    async with asyncio.timeout(15):
        while await consumers_on_tasks(gated.client) <= before:
            assert not waiting.done(), waiting.result()
            await asyncio.sleep(0.02)
    release.touch()
    code, out, err = await waiting
    record = await gated.ended(task_id)
    assert record.state == "succeeded"
    (queued,) = [e for e in await history.read_events(gated.mesh.bus.js, task_id) if isinstance(e, Queued)]
    policy = queued.decision
    assert policy.policy_hash and policy.policy_version
    assert (
        (code, out)
        == (
            0,
            f"allowed: tester task {task_id} succeeded at "
            f"{record.finished_at.astimezone(UTC).isoformat(timespec='seconds').replace('+00:00', 'Z')} "  # type: ignore[union-attr]
            f"under policy {policy.policy_version} ({policy.policy_hash[:12]})",
        )
    ), err

    # The HTTP answer is the CLI's, field for field.
    status, over_http = await gated.ask(reader, repo=REPO, commit=sha, max_age_s="3600")
    code, out, err = await gated.cli(
        "deploy", "--repo", REPO, "--commit", sha, "--tenant", "acme", "--max-age", "1h", "--json"
    )
    assert (status, code) == (200, 0), err
    assert over_http == json.loads(out)
    assert (over_http["allowed"], over_http["task_id"], over_http["policy_hash"]) == (
        True,
        task_id,
        policy.policy_hash,
    )

    # Every decision is on the gate's stream: who asked, how, what was decided, and the proof.
    log = await gated.client.gate_decisions("acme", repo=REPO, commit=sha)
    seen = [(d.by, d.via, d.answer.outcome, d.answer.task_id) for d in reversed(log)]
    assert seen == [
        ("deploy-bot@acme", "http", "no_test", None),
        (seen[1][0], "cli", "no_test", None),
        ("sdk-user", "sdk", "running", task_id),
        ("pipeline#42", "cli", "allowed", task_id),
        ("deploy-bot@acme", "http", "allowed", task_id),
        (seen[1][0], "cli", "allowed", task_id),
    ]
    assert "@" in seen[1][0]  # the CLI's user@host when no --by is given
    allowed = log[2]
    assert (allowed.answer.policy_version, allowed.answer.policy_hash) == (
        policy.policy_version,
        policy.policy_hash,
    )
    code, out, _ = await gated.cli("log", "--tenant", "acme", "--commit", sha, "--limit", "2")
    lines = out.splitlines()
    assert len(lines) == 2 and " allowed " in lines[0] and f"task={task_id}" in lines[0]
    assert "by deploy-bot@acme (http)" in lines[1]


async def test_a_failed_a_stale_and_a_never_allowed_test_refuse_and_another_tenant_is_never_seen(
    gated: Gated,
) -> None:
    failing, passing, parked = new_sha(), new_sha(), new_sha()
    failed = await gated.ended(await gated.tested(failing, "echo 1 failed; false"))
    passed = await gated.ended(await gated.tested(passing, "echo 3 passed"))
    waits = await gated.tested(parked, "echo never runs", data_region=PINNED)
    await awaiting(gated.client, waits)
    assert (failed.state, passed.state) == ("failed", "succeeded")

    async def gate(sha: str, **more: Any) -> Any:
        return await gated.client.deploy_gate(tenant="acme", repo=REPO, commit=sha, **more)

    answer = await gate(failing)
    assert (answer.allowed, answer.outcome, answer.task_id) == (False, "failed", failed.id)
    assert answer.reason.startswith(f"tester task {failed.id} failed at ")
    stale = await gate(passing, max_age_s=0.001)
    assert (stale.allowed, stale.outcome, stale.task_id) == (False, "stale", passed.id)
    assert "stale, before" in stale.reason
    assert (await gate(passing)).allowed
    never = await gate(parked, wait_s=0.5)  # awaiting a human is not waited on
    assert (never.allowed, never.outcome, never.task_id) == (False, "not_allowed", waits)
    assert "awaits a human's approval" in never.reason

    # Another tenant's success for the same commit proves nothing in acme, and acme cannot ask about it.
    theirs = await gated.ended(await gated.tested(failing, "true", tenant="globex"))
    assert theirs.state == "succeeded"
    assert (await gate(failing)).outcome == "failed"
    assert (await gated.client.deploy_gate(tenant="globex", repo=REPO, commit=failing)).allowed
    acme = await gated.token("acme", "read", subject="alice@acme")
    status, body = await gated.ask(acme, repo=REPO, commit=failing, tenant="globex")
    assert (status, body["scope"]) == (403, "read")
    operator = await gated.token(ALL_TENANTS, "admin", subject="ops@example")
    status, body = await gated.ask(operator, repo=REPO, commit=failing)
    assert (status, body["field"]) == (400, "tenant")
    status, body = await gated.ask(operator, repo=REPO, commit=failing, tenant="globex")
    assert (status, body["allowed"], body["task_id"]) == (200, True, theirs.id)
    for bad, field in (
        ({"repo": REPO, "commit": failing[:12]}, "commit"),
        ({"repo": REPO, "commit": failing, "max_age_s": "0"}, "max_age_s"),
        ({"repo": REPO, "commit": failing, "max_age": "60"}, "max_age"),
        ({"commit": failing}, "repo"),
    ):
        status, body = await gated.ask(acme, **bad)
        assert (status, body["field"]) == (400, field), body
    status, _ = await gated.ask("not-a-token", repo=REPO, commit=failing)
    assert status == 401
    refused = await gated.client.gate_decisions("globex")
    assert [(d.by, d.answer.allowed) for d in refused] == [("ops@example", True), ("sdk", True)]
