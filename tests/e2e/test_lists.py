"""Finding work: the SDK's tasks() and workflows() on a running mesh, and `maestro ls` as a real process."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from maestro.bus import Bus
from maestro.client import Client
from maestro.settings import Settings
from proto.v1 import TaskRecord, TaskRequest
from proto.v1.workflows import Step, Workflow, WorkflowRecord, WorkflowState
from services.orchestrator.store import TaskStore
from services.orchestrator.workflows.store import WorkflowStore

MAESTRO = str(Path(sys.executable).parent / "maestro")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


async def ls(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """`maestro ls ARGS` against this test's nats-server, run off the event loop."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAESTRO_")}
    env["MAESTRO_NATS_URL"] = settings.nats_url or ""
    env["MAESTRO_DATA_DIR"] = settings.data_dir
    return await asyncio.to_thread(
        subprocess.run,
        [MAESTRO, "ls", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def put_task(bus: Bus, n: int, **fields: Any) -> None:
    at = T0 + timedelta(seconds=n)
    values: dict[str, Any] = {"tenant": "acme", "state": "succeeded", "role": "tester", **fields}
    await TaskStore(bus).put(TaskRecord(id=f"t-{n:03d}", created_at=at, updated_at=at, **values), None)


async def test_the_sdk_lists_the_tasks_a_mesh_ran(mesh: Client, settings: Settings) -> None:
    ids = []
    for n, tenant in enumerate(("lists-a", "lists-a", "lists-b")):
        request = TaskRequest(tenant=tenant, role="planner", prompt=f"Plan step {n}", labels={"run": "lists"})
        ids.append(await mesh.submit(request))
    for task_id in ids:
        assert (await mesh.wait(task_id, timeout=60)).state == "succeeded"

    page = await mesh.tasks(tenant="lists-a", states=["succeeded"], labels={"run": "lists"})
    assert sorted(r.id for r in page.items) == sorted(ids[:2]) and page.next_cursor is None
    created = [r.created_at for r in page.items]
    assert created == sorted(created, reverse=True)

    first = await mesh.tasks(labels={"run": "lists"}, limit=2)
    assert first.next_cursor is not None
    rest = await mesh.tasks(labels={"run": "lists"}, limit=2, cursor=first.next_cursor)
    assert sorted(r.id for r in first.items + rest.items) == sorted(ids) and rest.next_cursor is None
    assert (await mesh.tasks(role="tester", labels={"run": "lists"})).items == []

    done = await ls(settings, "--label", "run=lists", "--state", "succeeded")
    assert done.returncode == 0, done.stderr
    header, *rows = done.stdout.splitlines()
    assert header.split() == ["ID", "TENANT", "ROLE", "STATE", "CREATED", "COST", "WAITING", "FOR"]
    assert sorted(row.split()[0] for row in rows) == sorted(ids)
    assert all(row.split()[2:4] == ["planner", "succeeded"] for row in rows)
    assert all(row.split()[5].startswith("$") for row in rows)


async def test_ls_filters_pages_and_prints_json_lines(settings: Settings, bus: Bus) -> None:
    for n in range(5):
        await put_task(bus, n, labels={"repo": "r"})
    await put_task(bus, 5, tenant="beta", state="running", role="planner")

    one_page = await ls(settings, "--limit", "2", "--json")
    assert one_page.returncode == 0, one_page.stderr
    assert [json.loads(line)["id"] for line in one_page.stdout.splitlines()] == ["t-005", "t-004"]
    assert "--all" in one_page.stderr  # there is more

    every = await ls(settings, "--limit", "2", "--all", "--label", "repo=r", "--json")
    assert every.returncode == 0, every.stderr
    assert [json.loads(line)["id"] for line in every.stdout.splitlines()] == [
        f"t-{n:03d}" for n in range(4, -1, -1)
    ]
    assert every.stderr == ""

    mine = await ls(settings, "--tenant", "beta", "--state", "running,queued", "--role", "planner")
    assert mine.returncode == 0, mine.stderr
    assert [row.split()[:4] for row in mine.stdout.splitlines()[1:]] == [
        ["t-005", "beta", "planner", "running"]
    ]

    bad = await ls(settings, "--state", "sleeping")
    assert bad.returncode == 1
    assert bad.stderr.startswith("maestro: error: state:") and len(bad.stderr.splitlines()) == 1
    for args in (["--label", "novalue"], ["--workflows", "--role", "tester"]):
        refused = await ls(settings, *args)
        assert refused.returncode == 1 and refused.stderr.startswith("maestro: error:"), refused.stderr


async def test_ls_workflows(settings: Settings, bus: Bus) -> None:
    states: tuple[WorkflowState, ...] = ("succeeded", "running")
    for n, state in enumerate(states):
        definition = Workflow(tenant="acme", id=f"wf-{n}", steps=[Step(name="a", role="planner", prompt="p")])
        at = T0 + timedelta(seconds=n)
        record = WorkflowRecord(
            id=definition.id,
            tenant="acme",
            state=state,
            created_at=at,
            updated_at=at,
            workflow=definition,
            digest="d",
        )
        await WorkflowStore(bus).put(record, None)
    done = await ls(settings, "--workflows")
    assert done.returncode == 0, done.stderr
    assert [row.split()[:4] for row in done.stdout.splitlines()[1:]] == [
        ["wf-1", "acme", "-", "running"],
        ["wf-0", "acme", "-", "succeeded"],
    ]
    running = await ls(settings, "--workflows", "--state", "running", "--json")
    assert [json.loads(line)["id"] for line in running.stdout.splitlines()] == ["wf-1"]
