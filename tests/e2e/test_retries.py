"""Retries end to end on a real nats-server: back-off, one hold per attempt, failures that end at once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from maestro.client import Client
from maestro.settings import Settings
from proto.v1 import AttemptFailed, Failed, Retrying, RetryPolicy, Started, TaskRequest
from tests.e2e.conftest import open_mesh

QUICK = RetryPolicy(max_attempts=3, initial_backoff_s=0.5, multiplier=2, max_backoff_s=5, jitter=0)


@pytest.fixture
async def mesh(settings: Settings) -> AsyncIterator[Client]:
    # A command that runs longer than a second is stopped and its attempt failed as a time-out.
    async with AsyncExitStack() as stack:
        yield await open_mesh(settings.with_(command_timeout_s=1.0), stack)


def hangs_once(marker: Path) -> str:
    """A command that hangs the first time it runs and passes after."""
    return f"test -e {marker} || {{ touch {marker}; sleep 30; }}"


async def test_an_attempt_that_timed_out_is_retried_after_its_backoff_and_each_is_paid(
    mesh: Client, tmp_path: Path
) -> None:
    request = TaskRequest(
        id="t-flaky",
        tenant="acme",
        role="tester",
        prompt="Run the suite",
        commands=[hangs_once(tmp_path / "ran")],
        retry=QUICK,
    )
    await mesh.submit(request)

    record = await mesh.wait("t-flaky", timeout=60)

    assert (record.state, record.attempts) == ("succeeded", 2)
    events = await mesh.events("t-flaky")
    (failed,) = [e for e in events if isinstance(e, AttemptFailed)]
    (retrying,) = [e for e in events if isinstance(e, Retrying)]
    assert (failed.attempt, failed.failure) == (1, "timeout")
    assert retrying.attempt == 2 and (retrying.next_at - failed.at).total_seconds() == pytest.approx(0.5)
    second = [e for e in events if isinstance(e, Started) and e.attempt == 2]
    assert second and second[0].at >= retrying.next_at
    assert retrying.reservation_id == "r-t-flaky.2"  # the second attempt held its own estimate
    assert record.cost_micro_usd >= failed.cost_micro_usd > 0  # both attempts are in the task's cost
    ledger = await mesh.ledger("acme")
    assert ledger.held_micro_usd == 0 and ledger.spent_micro_usd == record.cost_micro_usd


async def test_a_failure_that_would_fail_again_ends_the_task_at_once(mesh: Client) -> None:
    request = TaskRequest(
        id="t-broken", tenant="acme", role="tester", prompt="p", commands=["exit 3"], retry=QUICK
    )
    await mesh.submit(request)

    record = await mesh.wait("t-broken", timeout=60)

    assert (record.state, record.attempts) == ("failed", 1)
    (end,) = [e for e in await mesh.events("t-broken") if isinstance(e, Failed)]
    assert end.failure == "test_failed"
    assert not [e for e in await mesh.events("t-broken") if isinstance(e, Retrying)]


async def test_the_last_attempt_fails_the_task_saying_how_many_were_tried(mesh: Client) -> None:
    policy = RetryPolicy(max_attempts=2, initial_backoff_s=0.1, jitter=0)
    request = TaskRequest(
        id="t-hangs", tenant="acme", role="tester", prompt="p", commands=["sleep 30"], retry=policy
    )
    await mesh.submit(request)

    record = await mesh.wait("t-hangs", timeout=60)

    assert (record.state, record.attempts) == ("failed", 2)
    assert "after 2 attempts" in record.error
    assert len([e for e in await mesh.events("t-hangs") if isinstance(e, AttemptFailed)]) == 2
    assert (await mesh.ledger("acme")).held_micro_usd == 0
