"""Through the whole mesh: a tester task that tries to read the agent's environment gets none of it, the mesh
goes on serving, and an agent that could run tester commands only without isolation does not start."""

from __future__ import annotations

import asyncio
import os
import uuid
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from maestro import codec
from maestro.client import open_client
from maestro.runtime import running_service
from maestro.settings import Settings
from maestro.supervisor import ChildSpec, free_port, settings_env, spawn_child, wait_ready
from proto.v1 import ContextFile, TaskRequest
from services.agents.isolation import IsolationError
from services.agents.service import SERVICE as AGENTS
from services.budget.service import SERVICE as BUDGET
from services.guard.service import SERVICE as GUARD
from services.orchestrator.service import SERVICE as ORCHESTRATOR
from tests.e2e.conftest import wait_for_budget

# Reads every process environment it can see (the agent's by its pid, its parent's, all of /proc) and its
# own, prints them, and fails, so that what it printed is kept in the task's record.
PROBE = """\
import os, sys
seen, refused = [], 0
for pid in [sys.argv[1], str(os.getppid())] + [p for p in os.listdir("/proc") if p.isdigit()]:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            seen.append(f.read().replace(b"\\0", b" ").decode(errors="replace"))
    except OSError:
        refused += 1
print(" | ".join(seen))
print(" ".join(f"{k}={v}" for k, v in os.environ.items()))
print(f"PROBE read {len(seen)} environments, refused {refused}")
sys.exit(3)
"""


async def test_a_tester_command_cannot_read_the_agent_s_environment_and_the_mesh_serves_on(
    settings: Settings, tmp_path: Path
) -> None:
    settings = settings.with_(sandbox="auto")  # what an agent does unless told: the best isolation here
    secret = f"planted-{uuid.uuid4().hex}"
    # The agent is a process of its own, so the secret is in its real environment (what /proc shows).
    agents = ChildSpec("agents", "services.agents", free_port())
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAESTRO_")} | settings_env(settings)
    env |= {"MAESTRO_ROLES": "tester", "MAESTRO_PLANTED_SECRET": secret, "OPENAI_API_KEY": secret}
    agent = await spawn_child(agents, env, tmp_path)
    try:
        async with AsyncExitStack() as stack:
            for service in (BUDGET, ORCHESTRATOR, GUARD):
                await stack.enter_async_context(running_service(service, settings))
            client = await stack.enter_async_context(open_client(settings))
            await wait_for_budget(client)
            await wait_ready([agents])
            probe = TaskRequest(
                tenant="acme",
                role="tester",
                prompt="Look around",
                context=[ContextFile(path="probe.py", content=PROBE)],
                commands=[f"python probe.py {agent.pid}"],
            )
            await client.submit(probe)
            record = await client.wait(probe.id, timeout=60)
            events = await client.events(probe.id)
            after = TaskRequest(tenant="acme", role="tester", prompt="Still there?", commands=["echo fine"])
            await client.submit(after)
            next_record = await client.wait(after.id, timeout=60)
    finally:
        agent.kill()
        await agent.wait()
    assert record.state == "failed" and "PROBE read" in (record.error or record.output), record
    assert secret not in codec.encode(record).decode()
    assert all(secret not in codec.encode(event).decode() for event in events)
    assert "MAESTRO_" not in (record.error or "") + record.output
    assert next_record.state == "succeeded", next_record
    log = (tmp_path / "agents.log").read_text()
    assert "sandbox isolation in force" in log and secret not in log


async def test_an_agent_serving_the_tester_does_not_start_without_isolation(settings: Settings) -> None:
    # No program starts in 1 MiB of address space: no level's probe works, and `none` was not asked for.
    refused = settings.with_(sandbox="auto", sandbox_memory_bytes=1 << 20, roles=("tester",))
    with pytest.raises(IsolationError, match="no isolation works on this host"):
        async with running_service(AGENTS, refused) as agent:
            done, _ = await asyncio.wait({agent}, timeout=30)  # it ends on its own, at start
            assert done
