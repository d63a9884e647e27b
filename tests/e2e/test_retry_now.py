"""Retry now: a task waiting out a long back-off runs its next attempt when someone asks, once, recorded as
by them; a task that waits for no retry is refused, over the SDK and over HTTP with tokens."""

# ruff: noqa: F811 (the imported `secured` fixture, taken by its name)
from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from maestro.client import Client
from maestro.errors import NotFound
from maestro.retry_now import NotWaiting, retry_now
from maestro.settings import Settings
from proto.v1 import Retrying, RetryPolicy, Started, TaskRecord, TaskRequest
from tests.e2e.conftest import in_state
from tests.e2e.test_api_access import Secured, secured  # noqa: F401 (the fixture)
from tests.e2e.test_retries import hangs_once

LONG = RetryPolicy(max_attempts=3, initial_backoff_s=3600, multiplier=1, max_backoff_s=3600, jitter=0)


async def waiting_for_retry(client: Client, task_id: str) -> TaskRecord:
    """Until the task's record says when its next attempt runs (what `maestro status` would show)."""
    async with asyncio.timeout(30):
        while True:
            with contextlib.suppress(NotFound):
                record = await client.get(task_id)
                if record.next_retry_at is not None:
                    return record
            await asyncio.sleep(0.05)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.with_(command_timeout_s=1.0)


async def test_a_task_waiting_for_its_retry_runs_it_now_once_when_asked_over_http(
    secured: Secured, tmp_path: Path
) -> None:
    alice = await secured.token("acme", "submit", "read", subject="alice@acme")
    reader = await secured.token("acme", "read", subject="carl@acme")
    client = secured.mesh.client
    request = TaskRequest(
        id="t-wait",
        tenant="acme",
        role="tester",
        prompt="Run the suite",
        commands=[hangs_once(tmp_path / "ran")],
        retry=LONG,
    )
    await client.submit(request)
    record = await waiting_for_retry(client, "t-wait")
    assert record.state == "queued" and record.attempts == 1

    assert (await secured.call("POST", "/v1/tasks/t-wait/retry", reader, {}))[0] == 403
    status, body, _ = await secured.call(
        "POST", "/v1/tasks/t-wait/retry", alice, {"reason": "fixed the runner"}
    )
    assert status == 202 and (body["attempt"], body["by"]) == (2, "alice@acme"), body

    done = await client.wait("t-wait", timeout=30)
    assert (done.state, done.attempts) == ("succeeded", 2)
    events = await client.events("t-wait")
    asked = [e for e in events if isinstance(e, Retrying) and e.error.startswith("retried now")]
    assert [(e.attempt, e.error) for e in asked] == [(2, "retried now by alice@acme: fixed the runner")]
    assert len([e for e in events if isinstance(e, Started) and e.attempt == 2]) == 1  # ran once

    status, refused, _ = await secured.call("POST", "/v1/tasks/t-wait/retry", alice, {})
    assert status == 409 and refused["state"] == "succeeded"
    # A second click from a page that still showed it waiting: its schedule came due and is gone, so
    # nothing is scheduled again (the attempt does not run twice).
    with pytest.raises(NotWaiting, match="starting already"):
        await retry_now(client.bus, record, by="bob@acme")


async def test_a_task_that_waits_for_no_retry_is_refused(secured: Secured) -> None:
    client = secured.mesh.client
    await client.submit(TaskRequest(id="t-plain", tenant="acme", role="planner", prompt="Plan"))
    record = await in_state(client, "t-plain", "succeeded")
    with pytest.raises(NotWaiting, match="not waiting for a retry"):
        await client.retry_now("t-plain", by="ops")
    assert record.next_retry_at is None
