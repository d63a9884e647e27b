"""The processes of a benchmarked mesh, found by the name each was started under, and their CPU."""

from __future__ import annotations

import asyncio
import os
import sys

from bench.mesh import children_by_worker, cpu_seconds, services_cpu


async def test_a_child_is_found_by_its_worker_name_while_it_runs() -> None:
    env = {**os.environ, "MAESTRO_WORKER": "bench-test-child"}
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import sys; sys.stdin.read()", stdin=asyncio.subprocess.PIPE, env=env
    )
    try:
        assert children_by_worker().get("bench-test-child") == child.pid
        assert cpu_seconds(child.pid) >= 0.0
    finally:
        assert child.stdin is not None
        child.stdin.close()
        await child.wait()
    assert "bench-test-child" not in children_by_worker()


def test_the_services_cpu_leaves_out_the_server_and_the_harness() -> None:
    assert services_cpu({"guard": 1.0, "agents": 2.0, "nats-server": 4.0, "harness": 8.0}) == 3.0
