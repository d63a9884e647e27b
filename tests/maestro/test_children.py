"""The supervisor of child processes: a child is restarted when it dies on its own, never when it was told
to stop or refused its settings."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from maestro.children import EXIT_CONFIG, Supervisor, spawn


async def test_a_child_that_refuses_its_settings_is_not_restarted_and_says_why(tmp_path: Path) -> None:
    supervisor = Supervisor()
    launches = 0
    log = tmp_path / "budget.log"

    async def launch() -> asyncio.subprocess.Process:
        nonlocal launches
        launches += 1
        refuse = f"import sys; print('MAESTRO_PRICING: bad', file=sys.stderr); sys.exit({EXIT_CONFIG})"
        return await spawn([sys.executable, "-c", refuse], env=None, log_file=log)

    await asyncio.wait_for(supervisor.keep_running("budget", launch, log_file=log), 20)
    assert launches == 1
    assert supervisor.refused.is_set()
    assert supervisor.refusal == "budget cannot run with these settings: MAESTRO_PRICING: bad"


async def test_a_child_told_to_stop_is_not_restarted_however_it_exits(tmp_path: Path) -> None:
    supervisor = Supervisor()
    launches, launched = 0, asyncio.Event()

    async def launch() -> asyncio.subprocess.Process:
        nonlocal launches
        launches += 1
        # Exits with a failure when told to stop: still not restarted, since it was told.
        fail_on_term = (
            "import signal, sys, time; signal.signal(signal.SIGTERM, lambda *_: sys.exit(3)); time.sleep(60)"
        )
        process = await spawn([sys.executable, "-c", fail_on_term], env=None, log_file=tmp_path / "x.log")
        launched.set()
        return process

    running = asyncio.create_task(supervisor.keep_running("x", launch))
    await asyncio.wait_for(launched.wait(), 20)
    loop = asyncio.get_running_loop()
    assert await supervisor.stop(["x"], loop.time() + 10) == []
    await asyncio.wait_for(running, 5)
    assert (launches, supervisor.restarts) == (1, {})
