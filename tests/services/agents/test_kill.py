"""THE KILL TEST: an agent worker killed mid-task (SIGKILL, a real process); the task still succeeds once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from maestro.bus import Bus
from maestro.runtime import running_service
from maestro.settings import Settings
from proto.v1 import AttemptFailed, Started, Succeeded, TaskRequest
from services.budget.service import SERVICE as BUDGET
from tests.services.agents.flow import assign, budget_ready, events, first_event, ledger, outcome

ROOT = Path(__file__).resolve().parents[3]


@contextmanager
def agent_worker(settings: Settings, name: str, log_dir: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`python -m services.agents` serving the tester role as a child process; killed after the block."""
    env = {
        **os.environ,
        "MAESTRO_NATS_URL": settings.nats_url or "",
        "MAESTRO_DATA_DIR": settings.data_dir,
        "MAESTRO_ACK_WAIT_S": "2",
        "MAESTRO_HTTP_PORT": "0",
        "MAESTRO_ROLES": "tester",
        "MAESTRO_WORKER": name,
    }
    with open(log_dir / f"{name}.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.agents"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)


async def test_a_worker_killed_mid_task_leads_to_one_success_charged_once(
    bus: Bus, settings: Settings, tmp_path: Path
) -> None:
    task = TaskRequest(tenant="acme", role="tester", prompt="Run the slow check", commands=["sleep 3"])
    async with running_service(BUDGET, settings):
        await budget_ready(bus)
        with agent_worker(settings, "worker-1", tmp_path) as first:
            await assign(bus, task)
            seen = await first_event(bus, task.id, Started, Succeeded, AttemptFailed, within=20)
            # Started is stored before the role runs, so `sleep 3` is running when the worker dies.
            assert isinstance(seen, Started) and seen.worker == "worker-1", seen
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        with agent_worker(settings, "worker-2", tmp_path):
            done = (await outcome(bus, task.id, within=20))[-1]
            assert isinstance(done, Succeeded), done
        stored = await events(bus, task.id)
        view = await ledger(bus, "acme")

    # One attempt, delivered twice: a worker that dies loses its delivery, not an attempt.
    assert [(e.worker, e.attempt, e.delivery) for e in stored if isinstance(e, Started)] == [
        ("worker-1", 1, 1),
        ("worker-2", 1, 2),
    ]
    succeeded = [e for e in stored if isinstance(e, Succeeded)]
    assert len(succeeded) == 1 and succeeded[0].worker == "worker-2" and succeeded[0].attempt == 1
    assert "1 of 1 commands passed" in succeeded[0].output
    assert view.spent_micro_usd == succeeded[0].cost_micro_usd > 0
    assert view.held_micro_usd == 0
